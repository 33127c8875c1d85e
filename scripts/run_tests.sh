#!/bin/bash
# The test command: installs requirements-dev.txt into .venv (created if missing) and runs the test suite on CPU.
#   bash scripts/run_tests.sh [pytest arguments]
set -e
ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/scripts/setup_env.sh" requirements-dev.txt
cd "$ROOT"
export GLOG_v=3  # MindSpore: errors only
python -m pytest -q --durations=20 tests "$@"  # the slowest tests listed, to keep CI inside its time
