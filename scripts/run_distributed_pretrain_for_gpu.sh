#!/bin/bash
# Data-parallel pretraining on RANK_SIZE GPUs of this machine with msrun (NCCL), in the background;
# the log goes to ./pretraining_log.txt, each rank's to ./msrun_log/worker_N.log.
#   bash scripts/run_distributed_pretrain_for_gpu.sh RANK_SIZE EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [flags]
# DEVICE_TARGET=CPU in the environment runs the same on CPU processes (MindSpore's own collective).
# Several machines: RANK_SIZE counts the workers of all of them; on each machine set LOCAL_WORKER_NUM (its
# workers), MASTER_ADDR (the address of the machine with NODE_RANK=0), NODE_RANK (0, 1, ...) and the same
# MASTER_PORT (msrun's --local_worker_num --master_addr --node_rank --master_port). DRY_RUN=1 prints the command.
if [ $# -lt 3 ]; then
    echo "Usage: bash $0 RANK_SIZE EPOCH_SIZE DATA_DIR [SCHEMA_DIR] [run_pretrain.py flags]" >&2
    exit 1
fi
RANK_SIZE=$1 EPOCH_SIZE=$2 DATA_DIR=$3
shift 3
SCHEMA_DIR=""
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then SCHEMA_DIR=$1; shift; fi
if [ ! -d "$DATA_DIR" ]; then
    echo "DATA_DIR $DATA_DIR does not exist: pass the directory made by tools/create_pretraining_data.py" >&2
    exit 1
fi
PROJECT_DIR=$(cd "$(dirname "$0")/.." && pwd)
source "$PROJECT_DIR/scripts/run_guard.sh"
refuse_held_dirs . ckpt_* || exit 1
# msrun (installed with mindspore) starts each worker with the `python` on PATH: use the repository's .venv
if [ -x "$PROJECT_DIR/.venv/bin/python" ]; then export PATH="$PROJECT_DIR/.venv/bin:$PATH"; fi
TARGET=${DEVICE_TARGET:-GPU}
SINK=true
if [ "$TARGET" = "CPU" ]; then SINK=false; fi
COMMAND=(msrun --worker_num="$RANK_SIZE" --local_worker_num="${LOCAL_WORKER_NUM:-$RANK_SIZE}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" --master_port="${MASTER_PORT:-8118}" --node_rank="${NODE_RANK:-0}" \
    --log_dir=msrun_log --join=True \
    "$PROJECT_DIR/run_pretrain.py" \
    --device_target="$TARGET" --distribute="true" --epoch_size="$EPOCH_SIZE" \
    --enable_save_ckpt="true" --enable_lossscale="true" --do_shuffle="true" \
    --enable_data_sink="$SINK" --data_sink_steps=20 --load_checkpoint_path="" \
    --save_checkpoint_steps=10000 --save_checkpoint_num=1 \
    --data_dir="$DATA_DIR" --schema_dir="$SCHEMA_DIR" "$@")
if [ -n "$DRY_RUN" ]; then
    echo "${COMMAND[*]}"
    exit 0
fi
nohup "${COMMAND[@]}" >> pretraining_log.txt 2>&1 &
echo "distributed pretraining on ${LOCAL_WORKER_NUM:-$RANK_SIZE} of $RANK_SIZE $TARGET worker(s) in the background" \
     "(pid $!): log $(pwd)/pretraining_log.txt, per rank $(pwd)/msrun_log/, checkpoints $(pwd)/ckpt_N/"
