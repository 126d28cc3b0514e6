#!/usr/bin/env bash
# Installs schemathesis (PyPI, pinned) into ~/.cache/ferry/venv-schemathesis
# once, and prints the path of its `st` command. Used by
# tests/openapi_contract.rs, which runs it against a real `ferry serve`.
set -euo pipefail

SCHEMATHESIS_VERSION="3.39.16"
# hypothesis-jsonschema, which schemathesis 3 uses, calls an API that newer
# hypothesis releases removed ('many' object has no attribute 'more').
HYPOTHESIS_VERSION="6.120.0"
venv="$HOME/.cache/ferry/venv-schemathesis"
st="$venv/bin/st"

installed() {
  [ -x "$st" ] && "$st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION" \
    && "$venv/bin/python" -c "import hypothesis, sys; sys.exit(hypothesis.__version__ != '$HYPOTHESIS_VERSION')"
}

if ! installed; then
  command -v python3 >/dev/null 2>&1 || { echo "schemathesis.sh: python3 is required" >&2; exit 1; }
  # Tests may start in parallel: one installs, the others wait.
  mkdir -p "$HOME/.cache/ferry"
  exec 9>"$HOME/.cache/ferry/schemathesis-install.lock"
  flock 9
  if ! installed; then
    t0=$(date +%s)
    echo "schemathesis.sh: installing schemathesis $SCHEMATHESIS_VERSION into $venv" >&2
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
      "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION" >&2
    echo "schemathesis.sh: installed in $(( $(date +%s) - t0 ))s" >&2
  fi
  exec 9>&-
fi
echo "$st"
