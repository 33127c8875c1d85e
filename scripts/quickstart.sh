#!/bin/bash
# The main job, no arguments, CPU, about 10 minutes on 2 cores: does pretraining pay off, on data the repository
# ships? People's Daily -> vocab -> records -> pretrain tiny NEZHA -> finetune NER (CRF) from the pretrained
# checkpoint and from random weights on 100, 500 and 2,000 labeled sentences -> held-out entity F1 table and plot
# -> the pretrained start's tagger on two sentences (predict.py).
#   bash scripts/quickstart.sh [OUTPUT_DIR (default output/quickstart)] [PRETRAIN_STEPS (default 2500)]
# The full demonstration (three seeds, longer pretraining, sentiment too): scripts/pretrain_finetune_demo.sh.
# English pretraining from a Wikipedia dump: scripts/pretrain_wikipedia_sample.sh.
set -eo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec bash "$ROOT/scripts/pretrain_finetune_demo.sh" "${1:-$ROOT/output/quickstart}" "${2:-2500}" 0 100,500,2000 ner
