#!/bin/bash
# Data-parallel pretraining on the Ascend devices of an HCCL rank table, one background process per device;
# logs in ./LOG{N}/pretraining_log.txt, checkpoints in ./LOG{N}/ckpt_{N}/.
#   bash scripts/run_distributed_pretrain_ascend.sh DATA_DIR RANK_TABLE_FILE [EPOCH_SIZE] [run_pretrain.py flags]
# The rank table is the JSON that scripts/hccl_tools.py (like the model zoo's) writes for this machine, or one of
# several servers: each server runs this script and starts only its own devices (scripts/local_devices.py: this
# host's address or SERVER_ID=<server_id>), with the rank_id the table gives, each process bound to an equal share
# of the CPU cores with taskset (BIND_CORES=false to switch off). DRY_RUN=1 prints the commands instead.
# Flags with paths (e.g. --config) need absolute paths: each rank runs in its LOG{N} directory (the pre-flight
# check runs there too, so a relative path fails before anything starts).
# Not run on Ascend hardware by this project (no device was available): report what breaks.
source "$(dirname "$0")/common.sh"
if [ $# -lt 2 ]; then
    fail "usage: bash $0 DATA_DIR RANK_TABLE_FILE [EPOCH_SIZE] [run_pretrain.py flags]"
fi
require_data_dir "$1"
[ -f "$2" ] || fail "RANK_TABLE_FILE $2 does not exist: make it with scripts/hccl_tools.py"
DATA_DIR=$(realpath "$1")
RANK_TABLE_FILE=$(realpath "$2")
shift 2
EPOCH_SIZE=40
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then EPOCH_SIZE=$1; shift; fi
require_count EPOCH_SIZE "$EPOCH_SIZE"
pick_python
# This server's devices (the table may list several servers): "RANK_SIZE n", then "DEVICE_ID RANK_ID CORES" lines.
PLAN=$("$PYTHON" "$PROJECT_DIR/scripts/local_devices.py" "$RANK_TABLE_FILE") || exit 1
export RANK_TABLE_FILE RANK_SIZE=$(echo "$PLAN" | head -1 | cut -d' ' -f2)
refuse_held_dirs LOG* LOG*/ckpt_*
BIND_CORES=${BIND_CORES:-true}
if ! command -v taskset > /dev/null; then BIND_CORES=false; fi
zoo_pretrain_flags Ascend
FLAGS=(--device_target="Ascend" --distribute="true" --epoch_size="$EPOCH_SIZE" "${ZOO_PRETRAIN_FLAGS[@]}"
    --data_dir="$DATA_DIR" "$@")
if [ -z "$DRY_RUN" ]; then  # checked once, from the directory the first rank runs in
    read -r FIRST_DEVICE FIRST_RANK _ < <(echo "$PLAN" | sed -n 2p)
    mkdir -p "LOG$FIRST_RANK"
    (cd "LOG$FIRST_RANK" && ms_log_here && preflight run_pretrain.py "${FLAGS[@]}" --device_id="$FIRST_DEVICE" \
        --device_num="$RANK_SIZE") || exit 1
fi
while read -r DEVICE_ID RANK_ID CORES; do
    BIND=()
    if [ "$BIND_CORES" = "true" ]; then BIND=(taskset -c "$CORES"); fi
    COMMAND=("${BIND[@]}" "$PYTHON" "$PROJECT_DIR/run_pretrain.py" --device_id="$DEVICE_ID" "${FLAGS[@]}")
    if [ -n "$DRY_RUN" ]; then
        echo "RANK_ID=$RANK_ID DEVICE_ID=$DEVICE_ID ${COMMAND[*]}"
        continue
    fi
    mkdir -p "LOG$RANK_ID"
    (
        cd "LOG$RANK_ID" || exit 1
        export DEVICE_ID RANK_ID
        ms_log_here
        nohup "${COMMAND[@]}" >> pretraining_log.txt 2>&1 &
        echo "rank $RANK_ID on device $DEVICE_ID (pid $!${BIND[*]:+, cores $CORES}): log $(pwd)/pretraining_log.txt"
    )
done < <(echo "$PLAN" | tail -n +2)
