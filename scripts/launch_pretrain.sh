#!/bin/bash
# Shared by the standalone pretraining launchers: runs run_pretrain.py in the background with the model zoo's
# standalone settings, appending to pretraining_log.txt in the current directory (refused where a live run works).
#   launch_pretrain DEVICE_TARGET DEVICE_ID EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [extra run_pretrain.py flags...]
launch_pretrain() {
    local device_target=$1 device_id=$2 epoch_size=$3 data_dir=$4
    shift 4
    local schema_dir=""
    if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then schema_dir=$1; shift; fi
    if [ ! -d "$data_dir" ]; then
        echo "DATA_DIR $data_dir does not exist: pass the directory made by tools/create_pretraining_data.py" >&2
        return 1
    fi
    local project_dir
    project_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    source "$project_dir/scripts/run_guard.sh"
    refuse_held_dirs . ckpt_0 || return 1
    local python=python
    if [ -x "$project_dir/.venv/bin/python" ]; then python="$project_dir/.venv/bin/python"; fi
    local sink=true
    if [ "$device_target" = "CPU" ]; then sink=false; fi
    mkdir -p ms_log
    export GLOG_log_dir=$(pwd)/ms_log
    export GLOG_logtostderr=0
    nohup "$python" "$project_dir/run_pretrain.py" \
        --device_target="$device_target" \
        --distribute="false" \
        --epoch_size="$epoch_size" \
        --device_id="$device_id" \
        --enable_save_ckpt="true" \
        --enable_lossscale="true" \
        --do_shuffle="true" \
        --enable_data_sink="$sink" \
        --data_sink_steps=20 \
        --load_checkpoint_path="" \
        --save_checkpoint_steps=10000 \
        --save_checkpoint_num=1 \
        --data_dir="$data_dir" \
        --schema_dir="$schema_dir" \
        "$@" >> pretraining_log.txt 2>&1 &
    echo "pretraining on $device_target in the background (pid $!): log $(pwd)/pretraining_log.txt," \
         "checkpoints $(pwd)/ckpt_0/, metrics $(pwd)/metrics.jsonl"
}
