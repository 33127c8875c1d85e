#!/bin/bash
# SQuAD v1.1 finetuning + evaluation in the background; log in ./squad_log.txt. Edit the settings below.
DEVICE_TARGET=""                       # Ascend | GPU | CPU; empty: the best device present
DEVICE_ID=0
TASK_CONFIG="$(dirname "$0")/../configs/finetune.yaml"
BERT_NETWORK=""                        # e.g. base-en, or the YAML written by tools/convert_checkpoint.py
EPOCH_NUM=3
VOCAB_FILE=""
EVAL_JSON=""                           # dev-v1.1.json
PRETRAIN_CKPT=""
TRAIN_DATA=""                          # records from tools/convert_task_data.py --task squad
SCHEMA_FILE=""

source "$(dirname "$0")/launch_finetune.sh"
launch_finetune run_squad.py squad_log.txt \
    ${DEVICE_TARGET:+--device_target="$DEVICE_TARGET"} --device_id="$DEVICE_ID" \
    --config="$TASK_CONFIG" ${BERT_NETWORK:+--bert_network="$BERT_NETWORK"} \
    --do_train="true" --do_eval="true" --epoch_num="$EPOCH_NUM" --num_class=2 \
    --vocab_file_path="$VOCAB_FILE" --eval_json_path="$EVAL_JSON" \
    --train_data_shuffle="true" --eval_data_shuffle="false" \
    --save_finetune_checkpoint_path="./squad_ckpt" --load_pretrain_checkpoint_path="$PRETRAIN_CKPT" \
    --train_data_file_path="$TRAIN_DATA" --schema_file_path="$SCHEMA_FILE" --output_dir="./squad_output"
