#!/bin/bash
# Data-parallel pretraining on the Ascend devices of an HCCL rank table, one background process per device;
# logs in ./LOG{N}/pretraining_log.txt, checkpoints in ./LOG{N}/ckpt_{N}/.
#   bash scripts/run_distributed_pretrain_ascend.sh DATA_DIR RANK_TABLE_FILE [EPOCH_SIZE] [run_pretrain.py flags]
# The rank table is the JSON that scripts/hccl_tools.py (like the model zoo's) writes for this machine.
# Flags with paths (e.g. --config) need absolute paths: each rank runs in its LOG{N} directory.
# Not run on Ascend hardware by this project (no device was available): report what breaks.
if [ $# -lt 2 ]; then
    echo "Usage: bash $0 DATA_DIR RANK_TABLE_FILE [EPOCH_SIZE] [run_pretrain.py flags]" >&2
    exit 1
fi
DATA_DIR=$(realpath "$1")
RANK_TABLE_FILE=$(realpath "$2")
shift 2
EPOCH_SIZE=40
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then EPOCH_SIZE=$1; shift; fi
if [ ! -d "$DATA_DIR" ]; then
    echo "DATA_DIR $DATA_DIR does not exist: pass the directory made by tools/create_pretraining_data.py" >&2
    exit 1
fi
PROJECT_DIR=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=python
if [ -x "$PROJECT_DIR/.venv/bin/python" ]; then PYTHON="$PROJECT_DIR/.venv/bin/python"; fi
DEVICE_IDS=$("$PYTHON" -c "import json, sys
table = json.load(open(sys.argv[1]))
print(' '.join(d['device_id'] for server in table['server_list'] for d in server['device']))" "$RANK_TABLE_FILE") || {
    echo "RANK_TABLE_FILE $RANK_TABLE_FILE is not an HCCL rank table (server_list[].device[].device_id)" >&2
    exit 1
}
export RANK_TABLE_FILE RANK_SIZE=$(echo "$DEVICE_IDS" | wc -w)
source "$PROJECT_DIR/scripts/run_guard.sh"
refuse_held_dirs LOG* LOG*/ckpt_* || exit 1
RANK_ID=0
for DEVICE_ID in $DEVICE_IDS; do
    mkdir -p "LOG$RANK_ID"
    (
        cd "LOG$RANK_ID" || exit 1
        export DEVICE_ID RANK_ID
        nohup "$PYTHON" "$PROJECT_DIR/run_pretrain.py" \
            --device_target="Ascend" --distribute="true" --device_id="$DEVICE_ID" --epoch_size="$EPOCH_SIZE" \
            --enable_save_ckpt="true" --enable_lossscale="true" --do_shuffle="true" \
            --enable_data_sink="true" --data_sink_steps=20 --load_checkpoint_path="" \
            --save_checkpoint_steps=10000 --save_checkpoint_num=1 \
            --data_dir="$DATA_DIR" "$@" >> pretraining_log.txt 2>&1 &
        echo "rank $RANK_ID on device $DEVICE_ID (pid $!): log $(pwd)/pretraining_log.txt"
    )
    RANK_ID=$((RANK_ID + 1))
done
