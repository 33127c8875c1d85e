#!/bin/bash
# Classification finetuning + evaluation in the background; log in ./classifier_log.txt. Edit the settings below.
DEVICE_TARGET=""                       # Ascend | GPU | CPU; empty: the best device present
DEVICE_ID=0
TASK_CONFIG="$(dirname "$0")/../configs/finetune.yaml"      # bert_network, batch_size, optimizer
BERT_NETWORK=""                        # model preset or YAML overriding the config's (e.g. ckpt/bert_base_zh.yaml)
NUM_CLASS=15
EPOCH_NUM=3
ASSESSMENT_METHOD=accuracy             # accuracy | f1 | mcc | spearman_correlation
PRETRAIN_CKPT=""                       # pretrained weights to start from
TRAIN_DATA=""                          # records from tools/convert_task_data.py --task classification
EVAL_DATA=""
SCHEMA_FILE=""

source "$(dirname "$0")/launch_finetune.sh"
launch_finetune run_classifier.py classifier_log.txt \
    ${DEVICE_TARGET:+--device_target="$DEVICE_TARGET"} --device_id="$DEVICE_ID" \
    --config="$TASK_CONFIG" ${BERT_NETWORK:+--bert_network="$BERT_NETWORK"} \
    --do_train="true" --do_eval="true" --assessment_method="$ASSESSMENT_METHOD" \
    --epoch_num="$EPOCH_NUM" --num_class="$NUM_CLASS" \
    --train_data_shuffle="true" --eval_data_shuffle="false" \
    --save_finetune_checkpoint_path="./classifier_ckpt" \
    --load_pretrain_checkpoint_path="$PRETRAIN_CKPT" \
    --train_data_file_path="$TRAIN_DATA" --eval_data_file_path="$EVAL_DATA" \
    --schema_file_path="$SCHEMA_FILE" --output_dir="./classifier_output"
