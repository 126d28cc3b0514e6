#!/usr/bin/env bash
# BullMQ baseline for ferry's engine benchmark (SPEC "Targets").
#
# Starts a PRIVATE redis-server (never the system one on 6379) on a free
# port with AOF on and `appendfsync always`, its data in a fresh temporary
# directory under $FERRY_BENCH_DIR (where ferry's engine-bench puts its log;
# set it to the same place for both), else $TMPDIR, else /tmp; installs the pinned npm packages if
# node_modules is missing, runs bench.mjs, stops redis and prints the JSON
# report on stdout. Extra arguments go to bench.mjs, e.g.
#   bench/bullmq/run.sh --jobs 20000 --tenants 100 --mode steps
# Needs: node (>= 18), npm, redis-server (7.x).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

for tool in node npm redis-server; do
  command -v "$tool" >/dev/null || { echo "run.sh: $tool not found" >&2; exit 1; }
done

if [ ! -f node_modules/bullmq/package.json ] || [ ! -f node_modules/ioredis/package.json ]; then
  start=$(date +%s%N)
  if ! npm ci --no-audit --no-fund --loglevel=error >&2; then
    # Only if the registry serves a different set of optional platform
    # packages than the lockfile lists (see README.md): same pinned
    # versions, without rewriting package-lock.json.
    echo "run.sh: npm ci failed; falling back to npm install --no-save" >&2
    npm install --no-save --no-audit --no-fund --loglevel=error >&2
  fi
  echo "run.sh: npm ci took $(( ($(date +%s%N) - start) / 1000000 )) ms" >&2
fi

dir="$(mktemp -d "${FERRY_BENCH_DIR:-${TMPDIR:-/tmp}}/ferry-bullmq-redis.XXXXXX")"
fs="$(df -PT "$dir" | awk 'NR==2 {print $2}')"
redis_pid=""
cleanup() {
  if [ -n "$redis_pid" ] && kill -0 "$redis_pid" 2>/dev/null; then
    kill "$redis_pid" 2>/dev/null || true
    wait "$redis_pid" 2>/dev/null || true
  fi
  rm -rf "$dir"
}
trap cleanup EXIT INT TERM

# A free port, picked by the kernel; retried if redis loses the race for it.
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

for attempt in 1 2 3 4 5; do
  port="$(free_port)"
  [ "$port" = 6379 ] && continue
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" \
    --appendonly yes --appendfsync always --save '' \
    --daemonize no --logfile "$dir/redis.log" &
  redis_pid=$!
  # Wait until it answers (or dies).
  up=""
  for _ in $(seq 1 100); do
    if ! kill -0 "$redis_pid" 2>/dev/null; then break; fi
    if node -e '
      const c=require("net").connect(+process.argv[1],"127.0.0.1");
      c.on("connect",()=>c.write("PING\r\n"));
      c.on("data",d=>process.exit(String(d).startsWith("+PONG")?0:1));
      c.on("error",()=>process.exit(1));' "$port" 2>/dev/null; then
      up=1; break
    fi
    sleep 0.1
  done
  [ -n "$up" ] && break
  echo "run.sh: redis-server did not come up on port $port (attempt $attempt):" >&2
  tail -5 "$dir/redis.log" >&2 || true
  kill "$redis_pid" 2>/dev/null || true
  wait "$redis_pid" 2>/dev/null || true
  redis_pid=""
done
[ -n "$redis_pid" ] || { echo "run.sh: could not start redis-server" >&2; exit 1; }
echo "run.sh: private redis-server pid $redis_pid on 127.0.0.1:$port, data in $dir ($fs)" >&2

set +e
REDIS_DATA_FS="$fs" node bench.mjs --host 127.0.0.1 --port "$port" "$@"
status=$?
set -e
exit "$status"
