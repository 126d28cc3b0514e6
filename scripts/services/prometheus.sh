#!/usr/bin/env bash
# A real Prometheus for tests and local runs (Debian's `prometheus` package,
# which also brings promtool), scraping ferry and loading ferry's alert
# rules from dashboards/alerts/ (every *.rules.yml).
#
#   scripts/services/prometheus.sh start [--port N] [--state DIR]   prints `export ...` lines
#   scripts/services/prometheus.sh stop  [--state DIR]
#   scripts/services/prometheus.sh status [--state DIR]
#   scripts/services/prometheus.sh install
#
# Use it as:  eval "$(scripts/services/prometheus.sh start)"
#
# What it scrapes: PROMETHEUS_SCRAPE_TARGET (default 127.0.0.1:8080, a
# `ferry serve` on its default bind; several comma-separated for the nodes
# of a cluster) every PROMETHEUS_SCRAPE_INTERVAL
# (default 15s; rules are evaluated as often). The config is written to the
# state folder at every start. Idempotent like the other service scripts:
# `install` skips an installed prometheus; `start` on a running server just
# prints its variables again. The state folder (default
# ~/.cache/ferry/services/prometheus, or $FERRY_PROMETHEUS_STATE_DIR) holds
# the pid, port, log, config and the TSDB (`data/`).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
alerts="$(cd "$here/../../dashboards/alerts" && pwd)"

NAME=prometheus.sh
LABEL=prometheus
PROC_MATCH=prometheus
STATE_ENV=FERRY_PROMETHEUS_STATE_DIR
STATE_DEFAULT="$HOME/.cache/ferry/services/prometheus"
DATA_SUBDIR=data
# shellcheck source=daemon.sh
. "$here/daemon.sh"
# shellcheck source=../lib/packages.sh
. "$here/../lib/packages.sh"

install() {
  if command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; then
    log "prometheus present: $(command -v prometheus)"
    return 0
  fi
  # Tests start servers in parallel: one installs, the others wait.
  mkdir -p "$HOME/.cache/ferry"
  exec 9>"$HOME/.cache/ferry/prometheus-install.lock"
  flock 9
  if ! command -v prometheus >/dev/null 2>&1; then
    # The package's service is not started here (no init system in CI);
    # this script runs its own server.
    ensure_packages prometheus
  fi
  exec 9>&-
  command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1
}

print_env() {
  local p
  p=$(cat "$state/port")
  echo "export PROMETHEUS_URL=http://127.0.0.1:$p"
}

launch() {
  local interval="${PROMETHEUS_SCRAPE_INTERVAL:-15s}"
  local targets="" t ts
  IFS=',' read -ra ts <<< "${PROMETHEUS_SCRAPE_TARGET:-127.0.0.1:8080}"
  for t in "${ts[@]}"; do targets+="${targets:+, }'$t'"; done
  cat > "$state/prometheus.yml" <<YML
global:
  scrape_interval: $interval
  evaluation_interval: $interval
rule_files:
  - $alerts/*.rules.yml
scrape_configs:
  - job_name: ferry
    static_configs:
      - targets: [$targets]
YML
  # setsid: the server outlives the shell (or test) that started it.
  setsid prometheus --config.file="$state/prometheus.yml" \
    --storage.tsdb.path="$state/data" --web.listen-address="127.0.0.1:$1" \
    >>"$state/log" 2>&1 < /dev/null 8>&- 9>&- &
}

daemon_main "$@"
