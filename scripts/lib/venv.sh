# Python tools from PyPI, each in a venv of its own under ~/.cache/ferry
# (sourced, not run). Used by the SMTP and moto servers and schemathesis.
#
#   venv_ensure LABEL VENV CHECK PACKAGE...
#
# Makes sure VENV's python passes CHECK (a Python snippet that exits 0 when
# the tools are there, e.g. `import aiosmtpd`); if not, creates VENV and
# pip-installs PACKAGEs, once: tests start servers in parallel, so one
# installs under a lock named after LABEL and the others wait for it.
# Progress goes to stderr. Fails if CHECK still fails afterwards.

venv_ensure() {
  local label=$1 venv=$2 check=$3
  shift 3
  local py="$venv/bin/python"
  _venv_ok() { [ -x "$py" ] && "$py" -c "$check" >/dev/null 2>&1; }
  _venv_ok && return 0
  command -v python3 >/dev/null 2>&1 || { echo "$label: python3 is required" >&2; return 1; }
  mkdir -p "$HOME/.cache/ferry"
  exec 9>"$HOME/.cache/ferry/$label-install.lock"
  flock 9
  if ! _venv_ok; then
    local t0
    t0=$(date +%s)
    echo "$label: installing $* into $venv" >&2
    [ -x "$py" ] || python3 -m venv "$venv" >&2
    "$py" -m pip install --quiet --disable-pip-version-check "$@" >&2
    echo "$label: installed in $(($(date +%s) - t0))s" >&2
  fi
  exec 9>&-
  _venv_ok
}
