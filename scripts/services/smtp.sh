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

NAME=smtp.sh
LABEL="the SMTP sink"
PROC_MATCH=smtp_sink
STATE_ENV=FERRY_SMTP_STATE_DIR
STATE_DEFAULT="$HOME/.cache/ferry/services/smtp"
DATA_SUBDIR=mail
# shellcheck source=daemon.sh
. "$here/daemon.sh"
# shellcheck source=../lib/venv.sh
. "$here/../lib/venv.sh"

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
  venv_ensure aiosmtpd "$venv" 'import aiosmtpd' aiosmtpd
}

print_env() {
  local p
  p=$(cat "$state/port")
  echo "export SMTP_URL=smtp://127.0.0.1:$p"
  echo "export FERRY_SMTP_SINK_DIR=$state/mail"
}

launch() {
  local py
  py=$(find_python)
  # setsid: the server outlives the shell (or test) that started it.
  setsid "$py" "$here/smtp_sink.py" --host 127.0.0.1 --port "$1" --dir "$state/mail" \
    >>"$state/log" 2>&1 < /dev/null 8>&- 9>&- &
}

daemon_main "$@"
