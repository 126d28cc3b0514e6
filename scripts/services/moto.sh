#!/usr/bin/env bash
# A second S3 server, for the test that needs a bucket lifecycle API (which
# s3s-fs does not have): moto's standalone server (PyPI `moto[server]`,
# pinned, in a venv), keeping its buckets in memory.
#
#   scripts/services/moto.sh start [--port N] [--state DIR]   prints `export ...` lines
#   scripts/services/moto.sh stop  [--state DIR]
#   scripts/services/moto.sh status [--state DIR]
#   scripts/services/moto.sh install
#
# Use it as:  eval "$(scripts/services/moto.sh start)"
#
# Idempotent like s3.sh. The state folder (default
# ~/.cache/ferry/services/moto, or $FERRY_MOTO_STATE_DIR) holds the pid,
# port and log.
set -euo pipefail

MOTO_VERSION="5.2.5"

here="$(cd "$(dirname "$0")" && pwd)"
venv="$HOME/.cache/ferry/venv-moto"

NAME=moto.sh
LABEL="moto's S3 server"
PROC_MATCH=moto_server
STATE_ENV=FERRY_MOTO_STATE_DIR
STATE_DEFAULT="$HOME/.cache/ferry/services/moto"
DATA_SUBDIR=data
# shellcheck source=daemon.sh
. "$here/daemon.sh"
# shellcheck source=../lib/s3_env.sh
. "$here/../lib/s3_env.sh"
# shellcheck source=../lib/venv.sh
. "$here/../lib/venv.sh"

install() {
  venv_ensure moto "$venv" "
import importlib.metadata as m, sys
sys.exit(m.version('moto') != '$MOTO_VERSION')
" "moto[s3,server]==$MOTO_VERSION"
}

print_env() {
  print_s3_env "$(cat "$state/port")"
}

launch() {
  # setsid: the server outlives the shell (or test) that started it.
  setsid "$venv/bin/moto_server" -H 127.0.0.1 -p "$1" \
    >>"$state/log" 2>&1 < /dev/null 8>&- 9>&- &
}

daemon_main "$@"
