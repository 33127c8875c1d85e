#!/bin/bash
# Data-parallel pretraining on RANK_SIZE GPUs of this machine with msrun (NCCL), in the background;
# the log goes to ./pretraining_log.txt, each rank's to ./msrun_log/worker_N.log.
#   bash scripts/run_distributed_pretrain_for_gpu.sh RANK_SIZE EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [flags]
# DEVICE_TARGET=CPU in the environment runs the same on CPU processes (MindSpore's own collective).
# Several machines: RANK_SIZE counts the workers of all of them; on each machine set LOCAL_WORKER_NUM (its
# workers), MASTER_ADDR (the address of the machine with NODE_RANK=0), NODE_RANK (0, 1, ...) and the same
# MASTER_PORT (msrun's --local_worker_num --master_addr --node_rank --master_port). DRY_RUN=1 prints the command
# (without the pre-flight check).
source "$(dirname "$0")/common.sh"
if [ $# -lt 3 ]; then
    fail "usage: bash $0 RANK_SIZE EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [run_pretrain.py flags]"
fi
RANK_SIZE=$1 EPOCH_SIZE=$2 DATA_DIR=$3
shift 3
require_count RANK_SIZE "$RANK_SIZE"
require_count EPOCH_SIZE "$EPOCH_SIZE"
LOCAL_WORKERS=${LOCAL_WORKER_NUM:-$RANK_SIZE}
require_count LOCAL_WORKER_NUM "$LOCAL_WORKERS"
[ "$LOCAL_WORKERS" -le "$RANK_SIZE" ] || fail "LOCAL_WORKER_NUM $LOCAL_WORKERS is more than RANK_SIZE $RANK_SIZE"
require_data_dir "$DATA_DIR"
take_schema_dir "$@"
if [ -n "$SCHEMA_DIR" ]; then shift; fi
refuse_held_dirs . ckpt_*
pick_python
# msrun (installed with mindspore) starts each worker with the `python` on PATH: the one picked above
export PATH="$(dirname "$PYTHON"):$PATH"
TARGET=${DEVICE_TARGET:-GPU}
zoo_pretrain_flags "$TARGET"
FLAGS=(--device_target="$TARGET" --distribute="true" --epoch_size="$EPOCH_SIZE" "${ZOO_PRETRAIN_FLAGS[@]}"
    --data_dir="$DATA_DIR" --schema_dir="$SCHEMA_DIR" "$@")
COMMAND=(msrun --worker_num="$RANK_SIZE" --local_worker_num="$LOCAL_WORKERS" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-8118}" --node_rank="${NODE_RANK:-0}" \
    --log_dir=msrun_log --join=True "$PROJECT_DIR/run_pretrain.py" "${FLAGS[@]}")
if [ -n "$DRY_RUN" ]; then
    echo "${COMMAND[*]}"
    exit 0
fi
ms_log_here
preflight run_pretrain.py "${FLAGS[@]}" --device_num="$RANK_SIZE"
nohup "${COMMAND[@]}" >> pretraining_log.txt 2>&1 &
echo "distributed pretraining on $LOCAL_WORKERS of $RANK_SIZE $TARGET worker(s) in the background" \
     "(pid $!): log $PWD/pretraining_log.txt, per rank $PWD/msrun_log/, checkpoints $PWD/ckpt_N/"
