#!/bin/bash
# Sourced by every launcher: the python to run, argument checks, the lock check, MindSpore's log directory, the
# model zoo's pretraining flags, and the entry script's own pre-flight check (--check_only true), so a launcher
# goes to the background only with a run that passed every check a run makes before its first step.
PROJECT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
LAUNCHER=$(basename "$0")

fail() {
    echo "$LAUNCHER: $*" >&2
    exit 1
}

# PYTHON: the repository's .venv, else python3 on PATH; refused when it cannot import MindSpore.
pick_python() {
    if [ -x "$PROJECT_DIR/.venv/bin/python" ]; then
        PYTHON="$PROJECT_DIR/.venv/bin/python"
    else
        PYTHON=$(command -v python3 || command -v python) || fail "no python on PATH: run bash scripts/setup_env.sh"
    fi
    "$PYTHON" -c 'import importlib.util, sys; sys.exit(importlib.util.find_spec("mindspore") is None)' 2>/dev/null ||
        fail "$PYTHON cannot import mindspore: run 'bash $PROJECT_DIR/scripts/setup_env.sh' (it creates" \
             "$PROJECT_DIR/.venv with the pinned requirements) or activate an environment with mindspore==2.10.0"
}

# require_count NAME VALUE: a whole number of at least 1.
require_count() {
    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] || fail "$1 '$2' is not a whole number of at least 1"
}

# require_device_id NAME VALUE: a whole number of at least 0.
require_device_id() {
    [[ "$2" =~ ^[0-9]+$ ]] || fail "$1 '$2' is not a device number (0, 1, ...)"
}

# require_data_dir DIR: the records directory exists.
require_data_dir() {
    [ -d "$1" ] || fail "DATA_DIR $1 does not exist: pass the directory made by tools/create_pretraining_data.py"
}

# refuse_held_dirs DIR...: a DIR/.run.lock naming a running process (or one on another host) refuses the launch;
# a lock left by a killed run is ignored (the new run takes it over).
refuse_held_dirs() {
    local dir lock pid host
    for dir in "$@"; do
        lock="$dir/.run.lock"
        [ -f "$lock" ] || continue
        read -r pid host _ < "$lock"
        if [ "$host" != "$(hostname)" ] || kill -0 "$pid" 2>/dev/null; then
            fail "$dir is in use by a run (pid $pid on $host): wait for it to end or start from another directory"
        fi
    done
}

# SCHEMA_DIR: the optional positional argument after DATA_DIR (anything not starting with --); the caller shifts
# it off when set.
take_schema_dir() {
    SCHEMA_DIR=""
    if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then SCHEMA_DIR=$1; fi
}

# MindSpore's own log lines go to ./ms_log, not the run's log.
ms_log_here() {
    mkdir -p ms_log
    export GLOG_log_dir="$PWD/ms_log" GLOG_logtostderr=0
}

# ZOO_PRETRAIN_FLAGS: the model zoo's pretraining settings; data sinking on devices that have it.
zoo_pretrain_flags() {
    local sink=true
    if [ "$1" = "CPU" ]; then sink=false; fi
    ZOO_PRETRAIN_FLAGS=(--enable_save_ckpt="true" --enable_lossscale="true" --do_shuffle="true"
        --enable_data_sink="$sink" --data_sink_steps=20 --load_checkpoint_path=""
        --save_checkpoint_steps=10000 --save_checkpoint_num=1)
}

# preflight SCRIPT FLAGS...: the entry script checks everything a run checks before its first step, here and
# now; its one-line error (on stderr) ends the launcher.
preflight() {
    local script=$1
    shift
    "$PYTHON" "$PROJECT_DIR/$script" "$@" --check_only="true" > /dev/null || exit 1
}
