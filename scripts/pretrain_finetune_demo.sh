#!/bin/bash
# Does pretraining pay off? Chinese text the repository ships, CPU only, no arguments needed:
#   People's Daily (NER) and reviews (sentiment) -> held-out test sets, labeled training sets, unlabeled text
#   -> WordPiece vocab -> pretraining records (whole-word masking with jieba) -> pretrain tiny NEZHA (MLM + NSP):
#      for NER on all the unlabeled text, for sentiment on the reviews' own (each sequence once, fresh masks)
#   -> finetune from the pretrained checkpoint and from random weights, identical settings, on each labeled set
#   -> held-out tables (compare.json, compare.txt) and plots (compare.png) per task
#   -> the NER model trained on the most labels (pretrained start) tagging two sentences with predict.py.
#   bash scripts/pretrain_finetune_demo.sh [OUTPUT_DIR] [PRETRAIN_STEPS] [SEEDS] [TRAIN_SIZES] [TASKS] [SENTIMENT_STEPS]
# Defaults: output/pretrain_finetune_demo, 9000 steps (NER's model), seeds 0,1,2, sizes 100,500,2000, tasks
# ner,sentiment, 7000 steps (the sentiment model's). scripts/quickstart.sh runs it with fewer steps, one seed and NER.
set -eo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
TASKS=${5:-ner,sentiment}
NER_MODEL=false SENTIMENT_MODEL=false
for TASK in ${TASKS//,/ }; do
    case $TASK in
        ner) NER_MODEL=true ;;
        sentiment) SENTIMENT_MODEL=true ;;
        *) echo "pretrain_finetune_demo.sh: unknown task '$TASK' (5th argument): pass ner, sentiment or ner,sentiment" >&2
           exit 1 ;;
    esac
done
for STEPS_ARGUMENT in "2 ${2:-9000}" "6 ${6:-7000}"; do
    [[ ${STEPS_ARGUMENT#* } =~ ^[1-9][0-9]*$ ]] || { echo "pretrain_finetune_demo.sh: pretraining steps \
'${STEPS_ARGUMENT#* }' (argument ${STEPS_ARGUMENT%% *}) is not a positive integer" >&2; exit 1; }
done
OUT=$(mkdir -p "${1:-$ROOT/output/pretrain_finetune_demo}" && cd "${1:-$ROOT/output/pretrain_finetune_demo}" && pwd)
STEPS=${2:-9000}
SEEDS=${3:-0,1,2}
SIZES=${4:-100,500,2000}
SENTIMENT_STEPS=${6:-7000}
source "$ROOT/scripts/setup_env.sh" requirements.txt
cd "$ROOT"
export GLOG_v=3  # MindSpore: errors only

# Each stage's title says how long it takes on a 2-core AMD EPYC (AVX2) at these settings; the line after it, how
# long it took here. Stage times scale with the pretraining steps, the seeds and the labeled sizes.
# Measured at the quickstart's settings (docs/quickstart.md): a finetuning run takes FINETUNE_RUN_S plus
# FINETUNE_LABEL_MS a labeled example
SPLIT_S=3 SPLIT_SEED_S=1 VOCAB_S=4 RECORDS_S=18 REVIEW_RECORDS_S=30 PRETRAIN_START_S=20 PRETRAIN_STEP_MS=135 FINETUNE_RUN_S=52
FINETUNE_LABEL_MS=10 PREDICT_S=4
clock() { printf '%d:%02d' $(($1 / 60)) $(($1 % 60)); }
STAGE_STARTED=
stage() {  # stage TITLE EXPECTED_SECONDS
    [ -z "$STAGE_STARTED" ] || echo "   (took $(clock $((SECONDS - STAGE_STARTED))))"
    echo "== $1 (about $(clock "$2") on 2 cores)"
    STAGE_STARTED=$SECONDS
}
SEED_COUNT=$(tr ',' '\n' <<< "$SEEDS" | wc -l)
TASK_COUNT=$(tr ',' '\n' <<< "$TASKS" | wc -l)
LABELS=$(( $(tr ',' '+' <<< "$SIZES") ))

stage "1/5 held-out test sets, labeled training sets (sizes $SIZES, seeds $SEEDS), unlabeled pretraining text" \
    $((SPLIT_S + SPLIT_SEED_S * SEED_COUNT))
SPLIT=(--train_sizes "$SIZES" --seeds "$SEEDS" --overwrite true)
python tools/split_labeled_text.py --input_format peoples_daily --input_file data/peoples_daily_199801.txt.xz \
    --output_dir "$OUT/ner_splits" --test_size 1000 "${SPLIT[@]}"
python tools/split_labeled_text.py --input_format label_text --input_file data/chinese_reviews.tsv.xz \
    --output_dir "$OUT/sentiment_splits" --test_size 2000 "${SPLIT[@]}"
TEXT="$OUT/ner_splits/pretrain_text.txt,$OUT/sentiment_splits/pretrain_text.txt"  # no test example in it

stage "2/5 WordPiece vocab of the unlabeled text (and the nezha-tiny preset sized to it)" $VOCAB_S
python tools/create_vocab.py --input_file "$TEXT" --output_dir "$OUT/vocab" --vocab_size 6000 --config nezha-tiny \
    --overwrite true

# NER's model reads all the unlabeled text, 2 masks per sequence; the sentiment model reads the reviews' own text,
# 10 masks per sequence (Google's dupe_factor), so that its steps see each sequence once, with fresh masks (on the
# reviews alone, 2 masks are 4.5 passes over fixed masks by 7,000 steps and lose to random weights: docs/demonstration.md)
records() {  # records TEXT OUTPUT_DIR DUPE_FACTOR
    python tools/create_pretraining_data.py --input_file "$1" --output_dir "$2" --overwrite true \
        --vocab_file "$OUT/vocab/vocab.txt" --max_seq_length 64 --max_predictions_per_seq 10 --do_whole_word_mask true \
        --chinese_word_segmentation true --dupe_factor "$3" --processes 2
}
pretrain() {  # pretrain RECORDS_DIR OUTPUT_DIR STEPS
    python run_pretrain.py --device_target CPU --config configs/pretrain_demo.yaml \
        --bert_network "$OUT/vocab/model.yaml" --data_dir "$1" --train_steps "$3" \
        --enable_data_sink true --save_checkpoint_steps "$3" --save_checkpoint_path "$2" \
        --output_dir "$2" | awk 'NR % 250 == 1 || /checkpoint|^progress/ {print; fflush()}'
}
RECORDS_EXPECTED_S=0 PRETRAIN_EXPECTED_S=0
! $NER_MODEL || RECORDS_EXPECTED_S=$RECORDS_S PRETRAIN_EXPECTED_S=$((PRETRAIN_START_S + STEPS * PRETRAIN_STEP_MS / 1000))
! $SENTIMENT_MODEL || RECORDS_EXPECTED_S=$((RECORDS_EXPECTED_S + REVIEW_RECORDS_S)) \
    PRETRAIN_EXPECTED_S=$((PRETRAIN_EXPECTED_S + PRETRAIN_START_S + SENTIMENT_STEPS * PRETRAIN_STEP_MS / 1000))

stage "3/5 pretraining records: whole-word masking (jieba), sequences of 64" $RECORDS_EXPECTED_S
! $NER_MODEL || records "$TEXT" "$OUT/records" 2
! $SENTIMENT_MODEL || records "$OUT/sentiment_splits/pretrain_text.txt" "$OUT/reviews_records" 10

stage "4/5 pretraining tiny NEZHA on CPU (MLM + NSP, dropout off)" $PRETRAIN_EXPECTED_S
! $NER_MODEL || { echo "-- for NER, all the unlabeled text, $STEPS steps"; pretrain "$OUT/records" "$OUT/pretrain" "$STEPS"; }
! $SENTIMENT_MODEL || { echo "-- for sentiment, the reviews, $SENTIMENT_STEPS steps"
    pretrain "$OUT/reviews_records" "$OUT/reviews_pretrain" "$SENTIMENT_STEPS"; }

stage "5/5 finetuning from the pretrained checkpoint and from random weights, scored on held-out examples" \
    $((SEED_COUNT * TASK_COUNT * (FINETUNE_RUN_S * 2 * $(tr ',' '\n' <<< "$SIZES" | wc -l) + LABELS * FINETUNE_LABEL_MS / 1000)))
for TASK in ${TASKS//,/ }; do
    case $TASK in
        ner) CONFIG=configs/finetune_tiny.yaml PRETRAINED="$OUT/pretrain/ckpt_0" ;;  # CRF tagging, Lamb
        sentiment) CONFIG=configs/finetune_compare.yaml PRETRAINED="$OUT/reviews_pretrain/ckpt_0" ;;  # mean-pooled, AdamW
    esac
    echo "-- $TASK"
    python tools/compare_starts.py --splits_dir "$OUT/${TASK}_splits" --vocab_file "$OUT/vocab/vocab.txt" \
        --bert_network "$OUT/vocab/model.yaml" --pretrained_checkpoint "$PRETRAINED" --config "$CONFIG" \
        --output_dir "$OUT/$TASK" --overwrite true | grep -v "^epoch\|^training \|^finetuned checkpoint\|^wrote \|^note: "
done

if [[ ",$TASKS," == *",ner,"* ]]; then
    MODEL="$OUT/ner/runs/pretrained_${SIZES##*,}_seed${SEEDS%%,*}/ckpt"
    stage "the finetuned tagger on raw text (python predict.py --load_finetune_checkpoint_path $MODEL)" $PREDICT_S
    printf '%s\n' "江泽民主席在北京人民大会堂会见了美国总统克林顿。" "新华社香港电，香港特别行政区政府今天宣布了新的计划。" |
        python predict.py --load_finetune_checkpoint_path "$MODEL"
fi
echo "   (took $(clock $((SECONDS - STAGE_STARTED)))); all stages: $(clock $SECONDS)"
