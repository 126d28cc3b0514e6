# Lifecycle of one test/local server process, shared by s3.sh and smtp.sh:
# argument parsing, a free port, start (retrying another port when a picked
# one was taken), readiness (the port is held by OUR process, not merely
# open), stop, status, and a per-state-folder lock so a slow stop never
# removes the pid file of a newer start.
#
# The sourcing script sets before sourcing:
#   NAME        log prefix, e.g. s3.sh
#   LABEL       what the server is called in messages, e.g. s3s-fs
#   PROC_MATCH  a string in the server's command line (to recognise it)
#   STATE_ENV   variable that overrides the default state folder
#   STATE_DEFAULT
#   DATA_SUBDIR folder under the state folder the server keeps its data in
# and defines: install, print_env, launch PORT (start the server in the
# background with setsid, output to "$state/log", and echo nothing).
# Then it calls: daemon_main "$@"

log() { echo "$NAME: $*" >&2; }

alive() {
  [ -f "$state/pid" ] || return 1
  local pid
  pid=$(cat "$state/pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q "$PROC_MATCH" "/proc/$pid/cmdline" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
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
      log "$LABEL exited; last log lines:"; tail -n 20 "$state/log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "$LABEL did not accept connections on port $p within 10s"
  return 1
}

start() {
  mkdir -p "$state/$DATA_SUBDIR"
  if alive; then
    print_env
    return 0
  fi
  install
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
    launch "$port"
    echo $! > "$state/pid"
    if wait_ready "$port"; then
      log "$LABEL running on 127.0.0.1:$port (pid $(cat "$state/pid"), data in $state/$DATA_SUBDIR)"
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
  log "stopped $LABEL (pid $pid)"
}

lock_state() {
  mkdir -p "$state"
  exec 8>"$state/.lock"
  flock 8
}

daemon_main() {
  local cmd="${1:-}"
  [ $# -gt 0 ] && shift
  port=""
  state="${!STATE_ENV:-$STATE_DEFAULT}"
  while [ $# -gt 0 ]; do
    case "$1" in
      --port) port="$2"; shift 2 ;;
      --state) state="$2"; shift 2 ;;
      *) echo "$NAME: unknown argument $1" >&2; exit 2 ;;
    esac
  done
  case "$cmd" in
    install) install ;;
    start) lock_state; start ;;
    stop) lock_state; stop ;;
    status) if alive; then print_env; else echo "$NAME: not running" >&2; exit 1; fi ;;
    *) echo "usage: $0 install|start|stop|status [--port N] [--state DIR]" >&2; exit 2 ;;
  esac
}
