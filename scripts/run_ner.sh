#!/bin/bash
# NER finetuning + evaluation in the background; log in ./ner_log.txt. Edit the settings below.
DEVICE_TARGET=""                       # Ascend | GPU | CPU; empty: the best device present
DEVICE_ID=0
TASK_CONFIG="$(dirname "$0")/../configs/finetune.yaml"
BERT_NETWORK=""
USE_CRF=true
EPOCH_NUM=5
ASSESSMENT_METHOD=f1                   # f1 (entity level) | clue_benchmark (also writes the CLUENER submission)
LABEL2ID=""                            # the label2id file the records were made with
VOCAB_FILE=""
EVAL_JSON=""                           # CLUENER json of the eval set, for clue_benchmark
PRETRAIN_CKPT=""
TRAIN_DATA=""                          # records from tools/convert_task_data.py --task ner
EVAL_DATA=""
SCHEMA_FILE=""

source "$(dirname "$0")/launch_finetune.sh"
launch_finetune run_ner.py ner_log.txt \
    ${DEVICE_TARGET:+--device_target="$DEVICE_TARGET"} --device_id="$DEVICE_ID" \
    --config="$TASK_CONFIG" ${BERT_NETWORK:+--bert_network="$BERT_NETWORK"} \
    --do_train="true" --do_eval="true" --assessment_method="$ASSESSMENT_METHOD" --use_crf="$USE_CRF" \
    --epoch_num="$EPOCH_NUM" --label2id_file_path="$LABEL2ID" --vocab_file_path="$VOCAB_FILE" \
    --eval_json_path="$EVAL_JSON" --train_data_shuffle="true" --eval_data_shuffle="false" \
    --save_finetune_checkpoint_path="./ner_ckpt" --load_pretrain_checkpoint_path="$PRETRAIN_CKPT" \
    --train_data_file_path="$TRAIN_DATA" --eval_data_file_path="$EVAL_DATA" \
    --schema_file_path="$SCHEMA_FILE" --output_dir="./ner_output"
