#!/usr/bin/env bash
# Installs what the console's browser tests drive: Debian's Chromium
# (/usr/bin/chromium) and playwright-core (npm, pinned) under
# ~/.cache/ferry/node-browser, once, and prints the path of playwright-core's
# entry module. Used by tests/console.rs, which runs tests/console/console.mjs
# with node against a real `ferry serve`. playwright-core drives the system
# Chromium over the DevTools protocol; it downloads no browser of its own.
set -euo pipefail

PLAYWRIGHT_VERSION="1.65.2"
dir="$HOME/.cache/ferry/node-browser"
entry="$dir/node_modules/playwright-core/index.mjs"

# shellcheck source=packages.sh
. "$(dirname "$0")/packages.sh"
need=()
[ -x /usr/bin/chromium ] || need+=(chromium)
command -v node >/dev/null 2>&1 || need+=(nodejs)
command -v npm >/dev/null 2>&1 || need+=(npm)
ensure_packages "${need[@]}" >&2

installed=$(node -e "try{console.log(require('$dir/node_modules/playwright-core/package.json').version)}catch{}" 2>/dev/null || true)
if [ "$installed" != "$PLAYWRIGHT_VERSION" ]; then
  echo "browser.sh: installing playwright-core $PLAYWRIGHT_VERSION into $dir" >&2
  mkdir -p "$dir"
  [ -f "$dir/package.json" ] || echo '{"private": true}' > "$dir/package.json"
  npm install --prefix "$dir" --no-audit --no-fund --silent "playwright-core@$PLAYWRIGHT_VERSION" >&2
fi
[ -f "$entry" ] || { echo "browser.sh: $entry is missing after the install" >&2; exit 1; }
echo "$entry"
