#!/bin/bash
# Pretraining on one GPU device, in the background; the log goes to ./pretraining_log.txt.
#   bash scripts/run_standalone_pretrain_for_gpu.sh DEVICE_ID EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [run_pretrain.py flags]
# e.g. bash scripts/run_standalone_pretrain_for_gpu.sh 0 40 /data/cn-wiki-128 --config configs/pretrain_nezha.yaml
if [ $# -lt 3 ]; then
    echo "Usage: bash $0 DEVICE_ID EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [run_pretrain.py flags]" >&2
    exit 1
fi
source "$(dirname "$0")/launch_pretrain.sh"
launch_pretrain GPU "$@"
