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

NAME=s3.sh
LABEL=s3s-fs
PROC_MATCH=s3s-fs
STATE_ENV=FERRY_S3_STATE_DIR
STATE_DEFAULT="$HOME/.cache/ferry/services/s3"
DATA_SUBDIR=data
here="$(cd "$(dirname "$0")" && pwd)"
# shellcheck source=daemon.sh
. "$here/daemon.sh"
# shellcheck source=../lib/s3_env.sh
. "$here/../lib/s3_env.sh"

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

print_env() {
  print_s3_env "$(cat "$state/port")"
  echo "export FERRY_S3_DATA_DIR=$state/data"
}

launch() {
  local bin
  bin=$(find_bin)
  # setsid: the server outlives the shell (or test) that started it, and
  # belongs to no caller's process group.
  setsid "$bin" --host 127.0.0.1 --port "$1" \
    --access-key "$S3_ACCESS_KEY" --secret-key "$S3_SECRET_KEY" \
    "$state/data" >>"$state/log" 2>&1 < /dev/null 8>&- 9>&- &
}

daemon_main "$@"
