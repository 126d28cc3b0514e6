# Debian packages ferry needs to build and test, installed when missing.
# Sourced by scripts/demo and scripts/test.

# ensure_packages PACKAGE... : apt-get install the ones given (as root, or via sudo).
ensure_packages() {
  [ $# -gt 0 ] || return 0
  echo "installing: $*" >&2
  local sudo=()
  [ "$(id -u)" = 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "$@" >/dev/null
}

# Build prerequisites: libpq links diesel's PostgreSQL backend.
build_packages() {
  [ -e /usr/include/postgresql/libpq-fe.h ] || echo libpq-dev
}
