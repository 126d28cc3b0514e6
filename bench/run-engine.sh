#!/usr/bin/env bash
# Engine benchmark, side by side in one run: ferry's engine on its real sled
# log (fsync per commit batch) and on its PostgreSQL log (the server at
# DATABASE_URL, default the local one; COMMIT per batch) against BullMQ on a
# private Redis with `appendfsync always`, same workload, same machine. Writes a markdown report
# to bench/results/engine-<date>.md and prints it.
#
# Usage: bench/run-engine.sh [--workflows N] [--tenants T]
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/ferry/target}"
workflows=20000
tenants=100
while [ $# -gt 0 ]; do
  case "$1" in
    --workflows) workflows=$2; shift 2 ;;
    --tenants) tenants=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

cargo build --release -p ferry-bench --locked >/dev/null
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "running ferry engine-bench ..." >&2
FERRY_BENCH_DIR="$scratch" "$CARGO_TARGET_DIR/release/engine-bench" \
  --workflows "$workflows" --tenants "$tenants" > "$scratch/ferry.json"
load_ferry=$(cut -d' ' -f1-3 /proc/loadavg)

pg="(not run: no PostgreSQL at DATABASE_URL)"
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if psql "$DATABASE_URL" -Atqc 'SELECT 1' >/dev/null 2>&1; then
  echo "running ferry engine-bench on the PostgreSQL log ..." >&2
  "$CARGO_TARGET_DIR/release/engine-bench" --log postgres \
    --workflows "$workflows" --tenants "$tenants" > "$scratch/ferry-pg.json"
  pg=$(cat "$scratch/ferry-pg.json")
fi
load_pg=$(cut -d' ' -f1-3 /proc/loadavg)

bullmq="(not run: bench/bullmq/run.sh missing)"
if [ -x bench/bullmq/run.sh ]; then
  echo "running BullMQ baseline ..." >&2
  bullmq=$(bench/bullmq/run.sh --jobs "$workflows" --tenants "$tenants" 2>/dev/null || echo '{"error": "bullmq run failed"}')
fi
load_bullmq=$(cut -d' ' -f1-3 /proc/loadavg)

date=$(date -u +%Y-%m-%d)
out="bench/results/engine-$date.md"
mkdir -p bench/results
{
  echo "# Engine benchmark, $date"
  echo
  echo "Workload: $workflows workflows of 3 no-op steps over $tenants tenants;"
  echo "every transition durable (fsync) before it is acknowledged."
  echo
  echo "## Machine"
  echo
  echo "- CPU: $(lscpu | sed -n 's/^Model name: *//p') ($(nproc) cores)"
  echo "- memory: $(free -g | awk '/^Mem:/ {print $2}') GiB; kernel $(uname -r)"
  echo "- disk under the scratch folder: $(df -h "$scratch" | awk 'NR==2 {print $1, $2}')"
  echo "- load average after the sled / PostgreSQL / BullMQ runs: $load_ferry / $load_pg / $load_bullmq"
  echo
  echo "## ferry (engine-bench, sled log)"
  echo
  echo '```json'
  cat "$scratch/ferry.json"
  echo '```'
  echo
  echo "## ferry (engine-bench, PostgreSQL log: $(psql "$DATABASE_URL" -Atqc 'SHOW server_version' 2>/dev/null))"
  echo
  echo '```json'
  echo "$pg"
  echo '```'
  echo
  echo "## BullMQ on Redis, appendfsync always (bench/bullmq)"
  echo
  echo '```json'
  echo "$bullmq"
  echo '```'
} > "$out"
cat "$out"
