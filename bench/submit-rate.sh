#!/usr/bin/env bash
# The submit path on the embedded default: export submissions
# (POST /api/v1/tenant/export) posted by `hey` at fixed rates against a fresh
# `ferry serve` per run, with p50/p99 latency, the rate achieved and the
# answers' status codes. Side by side in one run, each rate twice: with the
# tenant's table list cached (the default, FERRY_TABLES_CACHE_SECS=10) and
# read from the tenant's database for every submit (FERRY_TABLES_CACHE_SECS=0).
# Exports run in the background meanwhile (one per tenant at a time), as in
# production. With FERRY_BASE_BIN set, that binary (an earlier build) runs
# each rate too, for a before/after in the same run. Target (SPEC; issue
# 13): p99 <= 5 ms at 1,000 submits/s.
#
# Usage: [FERRY_BASE_BIN=path] bench/submit-rate.sh [RATE ...]   (default: 250 500 1000)
# Writes bench/results/submit-rate-<date>.md and prints it.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=../scripts/lib/packages.sh
. scripts/lib/packages.sh
command -v hey >/dev/null 2>&1 || ensure_packages hey
# shellcheck source=lib.sh
. bench/lib.sh

rates=("$@")
[ ${#rates[@]} -gt 0 ] || rates=(250 500 1000)
duration=10s
workers=50

# run_rate LABEL RATE CACHE_SECS [BINARY]: one fresh server, one hey run;
# prints a markdown table row.
run_rate() {
  local data="$scratch/$1-$2" port token FERRY="${4:-$FERRY}"
  port=$(free_port)
  mkdir -p "$data"
  export FERRY_DATA_DIR="$data" FERRY_TABLES_CACHE_SECS="$3" FERRY_EXPORTS_PER_DAY=1000000000
  "$FERRY" sample --tenant acme >/dev/null
  token=$("$FERRY" token --tenant acme)
  start_server "$data" "$port"
  # One submit first, so both runs start with the server warm.
  curl -sf -o /dev/null -X POST -H "Authorization: Bearer $token" -H 'Content-Type: application/json' \
    -d '{"profile":"lite"}' "http://127.0.0.1:$port/api/v1/tenant/export"
  hey -z "$duration" -c "$workers" -q $(( $2 / workers )) -m POST -T application/json \
    -H "Authorization: Bearer $token" -d '{"profile":"lite"}' \
    "http://127.0.0.1:$port/api/v1/tenant/export" >"$data/hey.txt"
  stop_server
  awk -v label="$1" -v rate="$2" '
    /Requests\/sec:/ { rps = $2 }
    /50% in/ { p50 = $3 * 1000 }
    /99% in/ { p99 = $3 * 1000 }
    /^ *\[[0-9]+\]/ { codes = codes (codes ? ", " : "") $1 " " $2 }
    END { printf "| %s | %d | %.0f | %.1f | %.1f | %s |\n", label, rate, rps, p50, p99, codes }
  ' "$data/hey.txt"
}

rows=()
for rate in "${rates[@]}"; do
  log "rate $rate/s: table list cached"
  rows+=("$(run_rate cached "$rate" 10)")
  log "rate $rate/s: table list read per submit"
  rows+=("$(run_rate per-submit "$rate" 0)")
  if [ -n "${FERRY_BASE_BIN:-}" ]; then
    log "rate $rate/s: the earlier build"
    rows+=("$(run_rate "earlier build" "$rate" 10 "$FERRY_BASE_BIN")")
  fi
done

date=$(date -u +%Y-%m-%d)
out="bench/results/submit-rate-$date.md"
mkdir -p bench/results
{
  echo "# Submit path at fixed rates — $date"
  echo
  echo "Command: \`bench/submit-rate.sh ${rates[*]}\` (hey, $workers workers, $duration per run, a fresh \`ferry serve\` on the embedded default per run)"
  echo
  echo "## Machine"
  echo
  echo "- CPU: $machine_model, nproc $machine_cpus; memory $machine_mem"
  echo "- Load average (1/5/15 min): before $load_before, after $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "- $ferry_version (working tree)${FERRY_BASE_BIN:+; earlier build: $FERRY_BASE_BIN ($FERRY_BASE_LABEL)}; hey and ferry on the same machine"
  echo
  echo "## Results"
  echo
  echo "| build / table list | target rate /s | achieved /s | p50 ms | p99 ms | status codes |"
  echo "|---|---:|---:|---:|---:|---|"
  printf '%s\n' "${rows[@]}"
  echo
  echo "Target (SPEC; issue 13): p99 ≤ 5 ms at 1,000 submits/s."
} >"$out"
cat "$out"
