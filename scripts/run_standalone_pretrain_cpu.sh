#!/bin/bash
# Pretraining on the CPU, in the background; the log goes to ./pretraining_log.txt.
#   bash scripts/run_standalone_pretrain_cpu.sh EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [run_pretrain.py flags]
# e.g. bash scripts/run_standalone_pretrain_cpu.sh 1 records/ --config configs/pretrain_tiny.yaml
if [ $# -lt 2 ]; then
    echo "Usage: bash $0 EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [run_pretrain.py flags]" >&2
    exit 1
fi
source "$(dirname "$0")/launch_pretrain.sh"
launch_pretrain CPU 0 "$@"
