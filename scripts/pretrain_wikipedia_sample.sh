#!/bin/bash
# English pretraining from a Wikipedia dump on data the repository ships, no arguments, CPU, a few minutes:
#   set up .venv -> Wikipedia sample dump -> text (wikiextractor) -> WordPiece vocab -> pretraining records
#   -> pretrain the tiny preset -> loss curve -> MLM/NSP accuracy on held-out articles.
#   bash scripts/pretrain_wikipedia_sample.sh [OUTPUT_DIR (default output/wikipedia_sample)] [TRAIN_STEPS (default 1500)]
# For a real dump, pass its .xml.bz2 to tools/wiki_to_text.py as step 1 does.
set -eo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
OUT=$(mkdir -p "${1:-$ROOT/output/wikipedia_sample}" && cd "${1:-$ROOT/output/wikipedia_sample}" && pwd)
STEPS=${2:-1500}
source "$ROOT/scripts/setup_env.sh" requirements.txt
cd "$ROOT"
export GLOG_v=3  # MindSpore: errors only

echo "== 1/6 Wikipedia dump -> text with wikiextractor"
python tools/wiki_to_text.py --input data/enwiki-sample-pages-articles.xml.bz2 --output_dir "$OUT/text" --overwrite true
TRAIN_TEXT="$OUT/text/wiki_0000.txt,$OUT/text/wiki_0001.txt"
EVAL_TEXT="$OUT/text/wiki_0002.txt"  # articles held out from training

echo "== 2/6 WordPiece vocab (and the tiny model preset sized to it)"
python tools/create_vocab.py --input_file "$TRAIN_TEXT" --output_dir "$OUT/vocab" --vocab_size 2000 --config tiny \
    --overwrite true

echo "== 3/6 pretraining records (Google create_pretraining_data semantics)"
RECORD_FLAGS=(--vocab_file "$OUT/vocab/vocab.txt" --max_seq_length 64 --max_predictions_per_seq 10 --processes 2)
python tools/create_pretraining_data.py --input_file "$TRAIN_TEXT" --output_dir "$OUT/train_records" --overwrite true \
    --dupe_factor 5 "${RECORD_FLAGS[@]}"
python tools/create_pretraining_data.py --input_file "$EVAL_TEXT" --output_dir "$OUT/eval_records" --overwrite true \
    --dupe_factor 1 --random_seed 7 "${RECORD_FLAGS[@]}"

echo "== 4/6 pretraining the tiny model for $STEPS steps on CPU"
rm -rf "$OUT/ckpt_0" "$OUT/train_log.txt" "$OUT/metrics.jsonl"
python run_pretrain.py --device_target CPU --config configs/pretrain_tiny.yaml \
    --bert_network "$OUT/vocab/model.yaml" --data_dir "$OUT/train_records" --train_steps "$STEPS" \
    --enable_data_sink false --save_checkpoint_steps 500 --save_checkpoint_num 2 \
    --save_checkpoint_path "$OUT" --output_dir "$OUT" | awk 'NR % 100 == 1 || /checkpoint/ {print; fflush()}'

echo "== 5/6 loss curve"
python tools/plot_loss.py --metrics_file "$OUT/metrics.jsonl" --output "$OUT/loss.png"

echo "== 6/6 MLM / NSP accuracy on held-out articles"
python pretrain_eval.py --device_target CPU --config configs/pretrain_tiny.yaml \
    --bert_network "$OUT/vocab/model.yaml" --data_dir "$OUT/eval_records" --load_checkpoint_path "$OUT/ckpt_0" \
    --output_file "$OUT/eval.json"

echo
echo "checkpoints: $OUT/ckpt_0/"
echo "log:         $OUT/train_log.txt (per step), $OUT/metrics.jsonl (JSON lines)"
echo "loss curve:  $OUT/loss.png"
echo "accuracy:    $OUT/eval.json"
