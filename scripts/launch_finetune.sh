#!/bin/bash
# Shared by run_classifier.sh, run_ner.sh and run_squad.sh: checks the run (scripts/common.sh preflight), then runs
# the entry script in the background and says where its log is.
#   launch_finetune SCRIPT LOG_FILE [flags...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

launch_finetune() {
    local script=$1 log=$2
    shift 2
    refuse_held_dirs .
    pick_python
    ms_log_here
    preflight "$script" "$@"
    nohup "$PYTHON" "$PROJECT_DIR/$script" "$@" >> "$log" 2>&1 &
    echo "$script running in the background (pid $!): log $PWD/$log"
}
