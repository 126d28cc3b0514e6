#!/usr/bin/env bash
# PostgreSQL for tests and local runs.
#
#   scripts/services/postgres.sh start     prints `export DATABASE_URL=...`
#   scripts/services/postgres.sh restart   (a cluster this script started)
#   scripts/services/postgres.sh stop
#
# FERRY_PG_THROWAWAY=1 always makes a private cluster (tests that stop or
# restart PostgreSQL must not touch a shared one); FERRY_PG_STATE_DIR sets
# where it lives.
#
# `start` uses a PostgreSQL that already answers ($DATABASE_URL, else
# 127.0.0.1:5432 as user postgres); only if none does, it creates a
# throwaway cluster with initdb in a temporary folder (as the `postgres`
# user or `nobody`, since initdb refuses root), starts it on a free port,
# and prints its URL. `stop` stops only a cluster this script started.
# Use it as:  eval "$(scripts/services/postgres.sh start)"
set -euo pipefail

state="${FERRY_PG_STATE_DIR:-${TMPDIR:-/tmp}/ferry-pg-$(id -u)}"
log() { echo "postgres.sh: $*" >&2; }

pg_bin() {
  local name=$1
  if command -v "$name" >/dev/null 2>&1; then command -v "$name"; return; fi
  ls -d /usr/lib/postgresql/*/bin/"$name" 2>/dev/null | sort -V | tail -n 1
}

answers() {
  local url=$1
  "$(pg_bin psql)" "$url" -Atqc 'select 1' >/dev/null 2>&1
}

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

run_as() {
  local user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  if [ "$(id -u)" = 0 ]; then runuser -u "$user" -- "$@"; else "$@"; fi
}

start() {
  local url="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
  if [ "${FERRY_PG_THROWAWAY:-0}" != 1 ] && [ -n "$(pg_bin psql)" ] && answers "$url"; then
    log "using the running PostgreSQL at ${url%%\?*}"
    echo "export DATABASE_URL='$url'"
    return
  fi
  if [ -f "$state/port" ] && answers "postgres://postgres@127.0.0.1:$(cat "$state/port")/postgres"; then
    echo "export DATABASE_URL='postgres://postgres@127.0.0.1:$(cat "$state/port")/postgres'"
    return
  fi
  local initdb pg_ctl
  initdb=$(pg_bin initdb)
  pg_ctl=$(pg_bin pg_ctl)
  if [ -z "$initdb" ] || [ -z "$pg_ctl" ]; then
    log "no PostgreSQL answers and initdb is not installed; installing Debian's postgresql"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    initdb=$(pg_bin initdb)
    pg_ctl=$(pg_bin pg_ctl)
  fi
  local user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  rm -rf "$state"
  mkdir -p "$state"
  local port
  port=$(free_port)
  chown "$user" "$state"
  local as=()
  if [ "$(id -u)" = 0 ]; then as=(runuser -u "$user" --); fi
  log "starting a throwaway cluster in $state on port $port"
  "${as[@]}" "$initdb" -D "$state/data" -U postgres -A trust --no-sync >/dev/null
  "${as[@]}" "$pg_ctl" -D "$state/data" -l "$state/log" -w -o "-p $port -k $state -c listen_addresses=127.0.0.1 -c fsync=off" start >/dev/null
  echo "$port" > "$state/port"
  echo "export DATABASE_URL='postgres://postgres@127.0.0.1:$port/postgres'"
}

stop() {
  [ -d "$state/data" ] || return 0
  local user=postgres
  id "$user" >/dev/null 2>&1 || user=nobody
  local as=()
  if [ "$(id -u)" = 0 ]; then as=(runuser -u "$user" --); fi
  "${as[@]}" "$(pg_bin pg_ctl)" -D "$state/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$state"
}

restart() {
  [ -d "$state/data" ] || { log "no cluster of ours in $state"; exit 1; }
  run_as "$(pg_bin pg_ctl)" -D "$state/data" -m fast -w restart >/dev/null
}

case "${1:-}" in
  start) start ;;
  restart) restart ;;
  stop) stop ;;
  *) echo "usage: $0 start|restart|stop" >&2; exit 2 ;;
esac
