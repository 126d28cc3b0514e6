#!/usr/bin/env bash
# Side by side: ferry's engine-bench and the BullMQ baseline (run.sh),
# alternated ROUNDS times on the same workload, their data on the same
# filesystem (FERRY_BENCH_DIR, a fresh temporary directory), so both see the
# same machine state. Prints one JSON object per round, then a summary.
# Each side reports otherCpuSeconds: CPU the rest of the machine used
# meanwhile (for ferry over its whole run, latency and recovery phases
# included). Rounds where it is large shared the cores; don't quote them.
#
# Usage: bench/bullmq/compare.sh [ROUNDS]      (default 3)
# Env:   JOBS (20000), TENANTS (100),
#        ENGINE_BENCH: a built engine-bench binary; without it this runs
#        `cargo build --release -p ferry-bench --bin engine-bench` and uses
#        ${CARGO_TARGET_DIR:-<repo>/target}/release/engine-bench.
#        BULLMQ_ARGS: extra arguments for bench.mjs (e.g. "--threads 1").
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
rounds="${1:-3}"
jobs="${JOBS:-20000}"
tenants="${TENANTS:-100}"

engine="${ENGINE_BENCH:-}"
if [ -z "$engine" ]; then
  (cd "$root" && cargo build --release --locked -q -p ferry-bench --bin engine-bench) >&2
  engine="${CARGO_TARGET_DIR:-$root/target}/release/engine-bench"
fi
[ -x "$engine" ] || { echo "compare.sh: no engine-bench binary at $engine" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/ferry-compare.XXXXXX")"
trap 'rm -rf "$work"' EXIT INT TERM
export FERRY_BENCH_DIR="$work"

# Busy CPU seconds of the whole machine so far (USER_HZ = 100).
busy() { awk '/^cpu / {printf "%.2f", ($2 + $3 + $4 + $7 + $8) / 100}' /proc/stat; }

summarize='
const fs = require("fs");
const [e, b] = process.argv.slice(1, 3).map((f) => JSON.parse(fs.readFileSync(f, "utf8")));
const t = e.throughput ?? e;
console.log(JSON.stringify({
  ferry: { workflowsPerSecond: t.workflowsPerSecond, stepTransitionsPerSecond: t.stepTransitionsPerSecond, seconds: t.totalSeconds,
           otherCpuSecondsWholeRun: Number(process.argv[3]) },
  bullmq: { jobsPerSecond: b.jobsPerSecond, stepTransitionsPerSecond: b.stepTransitionsPerSecond, seconds: b.seconds,
            otherCpuSeconds: b.otherCpuSeconds, mode: b.mode },
  ratio: t.workflowsPerSecond / b.jobsPerSecond,
}));
'
for r in $(seq 1 "$rounds"); do
  # Small latency/recovery phases: only the throughput phase is compared.
  # Other load during it: machine-wide busy CPU less engine-bench's own.
  b0="$(busy)"
  TIMEFORMAT='%U %S'
  { time (cd "$work" && "$engine" --workflows "$jobs" --tenants "$tenants" \
      --latency-samples 100 --recovery 100 > "$work/engine.json"); } 2> "$work/engine.time"
  b1="$(busy)"
  engine_other="$(awk -v b0="$b0" -v b1="$b1" '{printf "%.3f", b1 - b0 - $1 - $2}' "$work/engine.time")"
  # shellcheck disable=SC2086
  "$here/run.sh" --jobs "$jobs" --tenants "$tenants" ${BULLMQ_ARGS:-} > "$work/bullmq.json"
  node -e "$summarize" "$work/engine.json" "$work/bullmq.json" "$engine_other" | tee -a "$work/rounds.jsonl"
done
node -e '
const rows = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
console.log(JSON.stringify({ summary: {
  rounds: rows.length,
  ferryWorkflowsPerSecondMedian: med(rows.map((r) => r.ferry.workflowsPerSecond)),
  bullmqJobsPerSecondMedian: med(rows.map((r) => r.bullmq.jobsPerSecond)),
  ratioMedian: med(rows.map((r) => r.ratio)),
} }));' "$work/rounds.jsonl"
