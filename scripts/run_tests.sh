#!/bin/bash
# The test command: installs requirements-dev.txt into .venv (created if missing) and runs the test suite on CPU.
#   [TEST_WORKERS=N] bash scripts/run_tests.sh [pytest arguments]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/setup_env.sh" requirements-dev.txt
cd "$ROOT"
export GLOG_v=3  # MindSpore: errors only
# TEST_WORKERS processes (default 2), each test file in one of them so that module fixtures run once, the slowest
# files first (tests/conftest.py orders them; --no-loadscope-reorder keeps that order); the slowest tests listed, to
# keep CI inside its time.
python -m pytest -q -n "${TEST_WORKERS:-2}" --dist loadfile --no-loadscope-reorder --durations=20 tests "$@"
