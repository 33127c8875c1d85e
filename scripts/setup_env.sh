#!/bin/bash
# Creates .venv in the repository (once) and installs a pinned requirements file into it; then activates it.
#   source scripts/setup_env.sh requirements.txt
set -e
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUIREMENTS=${1:-requirements.txt}
if [ ! -x "$ROOT/.venv/bin/python" ]; then
    echo "creating $ROOT/.venv"
    python3 -m venv "$ROOT/.venv"
fi
# shellcheck disable=SC1091
source "$ROOT/.venv/bin/activate"
echo "installing $REQUIREMENTS into $ROOT/.venv"
python -m pip install --quiet --disable-pip-version-check -r "$ROOT/$REQUIREMENTS"
# The project itself, editable: src/, tools/ and the entry scripts import from any directory without sys.path edits.
python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e "$ROOT"
