#!/usr/bin/env bash
# A real S3 server for tests and local runs: s3s-fs (SigV4, multipart,
# presigned URLs; no bucket lifecycle API), storing objects as plain files.
#
#   scripts/services/s3.sh start [--port N] [--state DIR]   prints `export ...` lines
#   scripts/services/s3.sh stop  [--state DIR]
#   scripts/services/s3.sh status [--state DIR]
#   scripts/services/s3.sh install
#
# Use it as:  eval "$(scripts/services/s3.sh start)"
#
# Idempotent: `install` skips an installed s3s-fs (in PATH or ~/.cargo/bin);
# `start` on a running server just prints its variables again; `stop` on a
# stopped one does nothing. The state folder (default
# ~/.cache/ferry/services/s3, or $FERRY_S3_STATE_DIR) holds the pid, port,
# log and data; a restart reuses the port and data, so an endpoint stays
# valid across stop/start. Only stdout carries the `export` lines; progress
# goes to stderr.
set -euo pipefail

S3S_FS_VERSION="0.14.1"
ACCESS_KEY="ferry-test-access"
SECRET_KEY="ferry-test-secret-key-0123456789"
REGION="us-east-1"

cmd="${1:-}"
[ $# -gt 0 ] && shift
port=""
state="${FERRY_S3_STATE_DIR:-$HOME/.cache/ferry/services/s3}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --state) state="$2"; shift 2 ;;
    *) echo "s3.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { echo "s3.sh: $*" >&2; }

find_bin() {
  if command -v s3s-fs >/dev/null 2>&1; then command -v s3s-fs; return 0; fi
  if [ -x "$HOME/.cargo/bin/s3s-fs" ]; then echo "$HOME/.cargo/bin/s3s-fs"; return 0; fi
  return 1
}

install() {
  if bin=$(find_bin); then
    log "s3s-fs present: $bin"
    return 0
  fi
  # Tests start servers in parallel: one installs, the others wait for it
  # (and then find the binary) instead of compiling it N times at once.
  mkdir -p "$HOME/.cache/ferry"
  exec 9>"$HOME/.cache/ferry/s3s-fs-install.lock"
  flock 9
  if bin=$(find_bin); then
    exec 9>&-
    log "s3s-fs present: $bin"
    return 0
  fi
  log "installing s3s-fs $S3S_FS_VERSION with cargo (first time only; about 3.5 minutes on 2 cores)"
  local t0 t1
  t0=$(date +%s)
  # A private target folder: the workspace's shared build cache stays free.
  env -u CARGO_TARGET_DIR cargo install "s3s-fs@$S3S_FS_VERSION" --features binary --locked >&2
  t1=$(date +%s)
  exec 9>&-
  log "installed s3s-fs in $((t1 - t0))s"
  find_bin >/dev/null
}

alive() {
  [ -f "$state/pid" ] || return 1
  local pid
  pid=$(cat "$state/pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q s3s-fs "/proc/$pid/cmdline" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

print_env() {
  local p
  p=$(cat "$state/port")
  echo "export MINIO_ENDPOINT=http://127.0.0.1:$p"
  echo "export MINIO_ACCESS_KEY=$ACCESS_KEY"
  echo "export MINIO_SECRET_KEY=$SECRET_KEY"
  echo "export MINIO_REGION=$REGION"
  echo "export FERRY_S3_DATA_DIR=$state/data"
}

# Is process $2 the one listening on port $1? A bare connect could reach
# someone else's server on a port we failed to bind.
listening() {
  local p="$1" pid="$2"
  if command -v ss >/dev/null 2>&1; then
    ss -ltnpH "sport = :$p" 2>/dev/null | grep -q "pid=$pid,"
  else
    kill -0 "$pid" 2>/dev/null && (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null \
      && sleep 0.3 && kill -0 "$pid" 2>/dev/null
  fi
}

wait_ready() {
  local p="$1" i
  for i in $(seq 1 100); do
    if listening "$p" "$(cat "$state/pid")"; then return 0; fi
    # Only "is the process there": right after the fork it may not have
    # exec'd the server yet, so its command line says nothing.
    if ! kill -0 "$(cat "$state/pid")" 2>/dev/null; then
      log "s3s-fs exited; last log lines:"; tail -n 20 "$state/log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "s3s-fs did not accept connections on port $p within 10s"
  return 1
}

start() {
  mkdir -p "$state/data"
  if alive; then
    print_env
    return 0
  fi
  install
  local bin
  bin=$(find_bin)
  local auto=0 attempt
  if [ -z "$port" ]; then
    if [ -s "$state/port" ]; then port=$(cat "$state/port"); else auto=1; fi
  fi
  # A port picked here may be taken by someone else before the server
  # binds it; with a picked port, try another. A given or remembered port
  # is kept, or the endpoint printed earlier would change.
  for attempt in 1 2 3; do
    [ "$auto" = 1 ] && port=$(free_port)
    echo "$port" > "$state/port"
    # setsid: the server outlives the shell (or test) that started it, and
    # belongs to no caller's process group.
    setsid "$bin" --host 127.0.0.1 --port "$port" \
      --access-key "$ACCESS_KEY" --secret-key "$SECRET_KEY" \
      "$state/data" >>"$state/log" 2>&1 < /dev/null 8>&- 9>&- &
    echo $! > "$state/pid"
    if wait_ready "$port"; then
      log "s3s-fs running on 127.0.0.1:$port (pid $(cat "$state/pid"), data $state/data)"
      print_env
      return 0
    fi
    stop
    [ "$auto" = 1 ] || return 1
    log "attempt $attempt failed; trying another port"
  done
  return 1
}

stop() {
  if ! alive; then
    rm -f "$state/pid"
    return 0
  fi
  local pid i
  pid=$(cat "$state/pid")
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null || true
  # Remove the pid file only if it still names the process stopped here.
  if [ "$(cat "$state/pid" 2>/dev/null)" = "$pid" ]; then rm -f "$state/pid"; fi
  log "stopped s3s-fs (pid $pid)"
}

# One start or stop at a time per state folder: a stop still waiting for
# its process to exit must not remove the pid file of a newer start.
lock_state() {
  mkdir -p "$state"
  exec 8>"$state/.lock"
  flock 8
}

case "$cmd" in
  install) install ;;
  start) lock_state; start ;;
  stop) lock_state; stop ;;
  status) if alive; then print_env; else echo "s3.sh: not running" >&2; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status [--port N] [--state DIR]" >&2; exit 2 ;;
esac
