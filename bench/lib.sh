# Shared helpers of the PostgreSQL benchmarks (sourced, not run): the ferry
# binary, scratch space and cleanup, a ferry server's lifecycle, timing and
# float formatting, and the machine description every result file records.
# Callers set `set -euo pipefail` and cd to the repository root first.

export PGHOST="${PGHOST:-127.0.0.1}" PGPORT="${PGPORT:-5432}" PGUSER="${PGUSER:-postgres}"
target_dir="${CARGO_TARGET_DIR:-$HOME/.cache/ferry/target}"
# FERRY_BIN measures a given binary; otherwise the working tree is built
# (always: a binary left from older sources must not be measured).
FERRY="${FERRY_BIN:-$target_dir/release/ferry}"
if [ -z "${FERRY_BIN:-}" ]; then
  CARGO_TARGET_DIR="$target_dir" cargo build --release -p ferry >&2
fi
GNU_TIME=""
if /usr/bin/time -v true >/dev/null 2>&1; then GNU_TIME=/usr/bin/time; fi

scratch=$(mktemp -d /tmp/ferry-bench.XXXXXX)
dbs=()
server_pid=""
cleanup() {
  if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  for db in "${dbs[@]}"; do
    psql -qX -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  done
  rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log() { echo "[$(date -u +%H:%M:%S)] $*" >&2; }
now() { date +%s.%N; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# awk-based float formatting: calc EXPR [PRINTF-FORMAT]
calc() { awk "BEGIN { printf \"${2:-%.2f}\", $1 }"; }

start_server() { # $1 = data dir, $2 = port; sets server_pid
  FERRY_BIND="127.0.0.1:$2" FERRY_EXPORTS_PER_DAY="${FERRY_EXPORTS_PER_DAY:-1000}" FERRY_REHYDRATIONS_PER_DAY=1000 FERRY_LOG_FORMAT=json \
    "$FERRY" serve >>"$1/serve.log" 2>&1 &
  server_pid=$!
  for _ in $(seq 200); do
    curl -sf "http://127.0.0.1:$2/healthz" >/dev/null 2>&1 && return 0
    kill -0 "$server_pid" 2>/dev/null || { tail -20 "$1/serve.log" >&2; return 1; }
    sleep 0.05
  done
  echo "ferry serve did not become healthy" >&2; return 1
}
stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

# Run a command, timing it; sets $elapsed (s) and $peak_kb (max RSS).
timed() {
  local t0 t1
  t0=$(now)
  if [ -n "$GNU_TIME" ]; then
    $GNU_TIME -v -o "$scratch/time.out" "$@"
    peak_kb=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$scratch/time.out")
  else
    "$@"
    peak_kb=0
  fi
  t1=$(now)
  elapsed=$(calc "$t1 - $t0" %.3f)
}

# Elapsed ms of each step of workflow $2 in the server's JSON log $1.
step_times() {
  grep -F "$2" "$1" | jq -r 'select((.fields.message // .message)=="step succeeded") | "\(.span.step // .spans[-1].step // "?")=\(.fields.elapsed_ms // .elapsed_ms)ms"' 2>/dev/null | paste -sd' ' - || true
}
# Elapsed ms of step $3 of workflow $2 in the server's JSON log $1.
step_ms() {
  grep -F "$2" "$1" | jq -r --arg s "$3" 'select((.fields.message // .message)=="step succeeded") | select((.span.step // .spans[-1].step) == $s) | (.fields.elapsed_ms // .elapsed_ms)' 2>/dev/null | tail -1
}

machine_model=$(lscpu | sed -n 's/^Model name: *//p' | head -1)
machine_cpus=$(nproc)
machine_mem=$(awk '/MemTotal/ { printf "%.1f GiB", $2/1048576 }' /proc/meminfo)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
pg_version=$(psql -qXAt -d postgres -c 'SHOW server_version')
ferry_version=$("$FERRY" --version 2>/dev/null || echo ferry)

# Export tenant $3 (default bench) through the server on port $1 with body
# $2; prints the final status JSON.
export_and_wait() {
  local token id status tenant="${3:-bench}"
  token=$("$FERRY" token --tenant "$tenant" --role tenant_admin --email "admin@$tenant.example")
  id=$(curl -sf -X POST "http://127.0.0.1:$1/api/v1/tenant/export" \
    -H "Authorization: Bearer $token" -H "Content-Type: application/json" -d "$2" | jq -r .job.id)
  while :; do
    sleep 0.5
    status=$(curl -sf "http://127.0.0.1:$1/api/v1/tenant/export/$id/status" -H "Authorization: Bearer $token")
    case $(jq -r .status <<<"$status") in
      completed | failed | cancelled) echo "$status"; return 0 ;;
    esac
  done
}
# Seconds from RFC 3339 time $1 to $2.
span_s() {
  python3 - "$1" "$2" <<'PY'
import re, sys
from datetime import datetime
def parse(s):
    s = re.sub(r"(\.\d{6})\d*", r"\1", s).replace("Z", "+00:00")
    return datetime.fromisoformat(s)
print("%.3f" % (parse(sys.argv[2]) - parse(sys.argv[1])).total_seconds())
PY
}
median() { printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
