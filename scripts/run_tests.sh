#!/bin/bash
# The test command: installs requirements-dev.txt and this project (editable) into .venv, checks the code with ruff,
# then runs the tests on CPU.
#   [TEST_WORKERS=N] bash scripts/run_tests.sh [--fast] [pytest arguments]
# --fast: the unit tier, every test not marked slow (pyproject.toml lists the markers): a few minutes on 2 cores.
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/setup_env.sh" requirements-dev.txt
cd "$ROOT"
ruff check .
TIER=()
if [ "${1:-}" == "--fast" ]; then
    shift
    TIER=(-m "not slow")
fi
export GLOG_v=3  # MindSpore: errors only
# TEST_WORKERS processes (default 2), each test file in one of them so that module fixtures run once, the slowest
# files first (tests/conftest.py orders them); pytest's other settings are in pyproject.toml.
python -m pytest -n "${TEST_WORKERS:-2}" "${TIER[@]}" "$@"
