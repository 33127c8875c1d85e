#!/bin/bash
# Shared by the standalone pretraining launchers: checks the run (scripts/common.sh preflight), then runs
# run_pretrain.py in the background with the model zoo's standalone settings, appending to pretraining_log.txt in
# the current directory.
#   launch_pretrain DEVICE_TARGET DEVICE_ID EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [extra run_pretrain.py flags...]
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

launch_pretrain() {
    local device_target=$1 device_id=$2 epoch_size=$3 data_dir=$4
    shift 4
    require_device_id DEVICE_ID "$device_id"
    require_count EPOCH_SIZE "$epoch_size"
    require_data_dir "$data_dir"
    take_schema_dir "$@"
    if [ -n "$SCHEMA_DIR" ]; then shift; fi
    refuse_held_dirs . ckpt_0
    pick_python
    zoo_pretrain_flags "$device_target"
    local flags=(--device_target="$device_target" --distribute="false" --epoch_size="$epoch_size"
        --device_id="$device_id" "${ZOO_PRETRAIN_FLAGS[@]}" --data_dir="$data_dir" --schema_dir="$SCHEMA_DIR" "$@")
    ms_log_here
    preflight run_pretrain.py "${flags[@]}"
    nohup "$PYTHON" "$PROJECT_DIR/run_pretrain.py" "${flags[@]}" >> pretraining_log.txt 2>&1 &
    echo "pretraining on $device_target in the background (pid $!): log $PWD/pretraining_log.txt," \
         "checkpoints $PWD/ckpt_0/, metrics $PWD/metrics.jsonl"
}
