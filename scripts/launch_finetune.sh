#!/bin/bash
# Shared by run_classifier.sh, run_ner.sh and run_squad.sh: runs an entry script in the background with the
# python of the repository's .venv when there is one, and says where its log is.
#   launch_finetune SCRIPT LOG_FILE [flags...]
launch_finetune() {
    local script=$1 log=$2
    shift 2
    local project_dir
    project_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    source "$project_dir/scripts/run_guard.sh"
    refuse_held_dirs . || return 1
    local python=python
    if [ -x "$project_dir/.venv/bin/python" ]; then python="$project_dir/.venv/bin/python"; fi
    mkdir -p ms_log
    export GLOG_log_dir=$(pwd)/ms_log
    export GLOG_logtostderr=0
    nohup "$python" "$project_dir/$script" "$@" >> "$log" 2>&1 &
    echo "$script running in the background (pid $!): log $(pwd)/$log"
}
