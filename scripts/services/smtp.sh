#!/usr/bin/env bash
# A real SMTP server for tests and local runs: Python's aiosmtpd with the
# handler in smtp_sink.py, which saves each received message as a file.
#
#   scripts/services/smtp.sh start [--port N] [--state DIR]   prints `export ...` lines
#   scripts/services/smtp.sh stop  [--state DIR]
#   scripts/services/smtp.sh status [--state DIR]
#   scripts/services/smtp.sh install
#
# Use it as:  eval "$(scripts/services/smtp.sh start)"
#
# Idempotent: `install` uses a python3 that already has aiosmtpd, else a
# venv under ~/.cache/ferry/venv-smtp (created and filled from PyPI once).
# `start` on a running server just prints its variables again; `stop` on a
# stopped one does nothing. The state folder (default
# ~/.cache/ferry/services/smtp, or $FERRY_SMTP_STATE_DIR) holds the pid,
# port, log and `mail/`, where every received message lands as
# `<seq>-<ns>.eml` (+ `.json` envelope). A restart reuses the port.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
venv="$HOME/.cache/ferry/venv-smtp"

cmd="${1:-}"
[ $# -gt 0 ] && shift
port=""
state="${FERRY_SMTP_STATE_DIR:-$HOME/.cache/ferry/services/smtp}"
while [ $# -gt 0 ]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --state) state="$2"; shift 2 ;;
    *) echo "smtp.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

log() { echo "smtp.sh: $*" >&2; }

find_python() {
  if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import aiosmtpd' 2>/dev/null; then
    echo "$venv/bin/python"; return 0
  fi
  if python3 -c 'import aiosmtpd' 2>/dev/null; then command -v python3; return 0; fi
  return 1
}

install() {
  if py=$(find_python); then
    log "aiosmtpd present for $py"
    return 0
  fi
  command -v python3 >/dev/null 2>&1 || { log "python3 is required"; return 1; }
  # Tests start servers in parallel: one installs, the others wait.
  mkdir -p "$HOME/.cache/ferry"
  exec 9>"$HOME/.cache/ferry/aiosmtpd-install.lock"
  flock 9
  if py=$(find_python); then
    exec 9>&-
    log "aiosmtpd present for $py"
    return 0
  fi
  local t0 t1
  t0=$(date +%s)
  log "installing aiosmtpd into $venv"
  if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv" >&2
  fi
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check aiosmtpd >&2
  t1=$(date +%s)
  exec 9>&-
  log "installed aiosmtpd in $((t1 - t0))s"
  find_python >/dev/null
}

alive() {
  [ -f "$state/pid" ] || return 1
  local pid
  pid=$(cat "$state/pid")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null && grep -q smtp_sink "/proc/$pid/cmdline" 2>/dev/null
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

print_env() {
  local p
  p=$(cat "$state/port")
  echo "export SMTP_URL=smtp://127.0.0.1:$p"
  echo "export FERRY_SMTP_SINK_DIR=$state/mail"
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
      log "the SMTP sink exited; last log lines:"; tail -n 20 "$state/log" >&2 || true
      return 1
    fi
    sleep 0.1
  done
  log "the SMTP sink did not accept connections on port $p within 10s"
  return 1
}

start() {
  mkdir -p "$state/mail"
  if alive; then
    print_env
    return 0
  fi
  install
  local py
  py=$(find_python)
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
    setsid "$py" "$here/smtp_sink.py" --host 127.0.0.1 --port "$port" --dir "$state/mail" \
      >>"$state/log" 2>&1 < /dev/null 8>&- 9>&- &
    echo $! > "$state/pid"
    if wait_ready "$port"; then
      log "SMTP sink running on 127.0.0.1:$port (pid $(cat "$state/pid"), mail in $state/mail)"
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
  log "stopped the SMTP sink (pid $pid)"
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
  status) if alive; then print_env; else echo "smtp.sh: not running" >&2; exit 1; fi ;;
  *) echo "usage: $0 install|start|stop|status [--port N] [--state DIR]" >&2; exit 2 ;;
esac
