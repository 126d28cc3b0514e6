#!/usr/bin/env bash
# Installs schemathesis (PyPI, pinned) into ~/.cache/ferry/venv-schemathesis
# once, and prints the path of its `st` command. Used by
# tests/openapi_contract.rs, which runs it against a real `ferry serve`.
set -euo pipefail

SCHEMATHESIS_VERSION="3.39.16"
# hypothesis-jsonschema, which schemathesis 3 uses, calls an API that newer
# hypothesis releases removed ('many' object has no attribute 'more').
HYPOTHESIS_VERSION="6.120.0"
venv="$HOME/.cache/ferry/venv-schemathesis"
st="$venv/bin/st"

# shellcheck source=venv.sh
. "$(dirname "$0")/venv.sh"
venv_ensure schemathesis "$venv" "
import importlib.metadata as m, sys
sys.exit(m.version('schemathesis') != '$SCHEMATHESIS_VERSION' or m.version('hypothesis') != '$HYPOTHESIS_VERSION')
" "schemathesis==$SCHEMATHESIS_VERSION" "hypothesis==$HYPOTHESIS_VERSION"
[ -x "$st" ] || { echo "schemathesis.sh: $st is missing after the install" >&2; exit 1; }
echo "$st"
