"""Named-entity recognition finetuning and evaluation (softmax or CRF tagging), flags as the MindSpore model zoo's.

    python run_ner.py --do_train true --do_eval true --use_crf true --label2id_file_path data/ner_labels.json \
        --train_data_file_path data/ner_train.tfrecord --eval_data_file_path data/ner_dev.tfrecord \
        --load_pretrain_checkpoint_path ckpt/bert_base_zh.ckpt --bert_network ckpt/bert_base_zh.yaml

Records come from tools/convert_task_data.py --task ner. The headline figure is entity-level F1 (an entity counts
only with its type and both boundaries right; seqeval's definition); token accuracy is printed beside it under
its own name. --assessment_method clue_benchmark also writes the CLUENER2020 submission json for the texts of
--eval_json_path.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from src.cli import ArgumentParser
from src.config import str2bool
from src.files.run_files import latest_checkpoint
from src.files.text_input import text_lines
from src.model.crf import backtrack
from src.model.task_heads import BertTaggerDecoder, BertTaggerWithLoss
from src.tasks.metrics import entity_scores, entity_spans
from src.tasks.task_files import load_ner_label2id
from src.train.finetune import (
    add_common_flags,
    check_eval_records,
    describe_run,
    finetune,
    predict,
    prepare,
    run_entry,
    write_eval_result,
)

PREFIX = "ner"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description="BERT NER finetuning")
    add_common_flags(parser, "finetune.yaml")
    parser.add_argument("--assessment_method", choices=("f1", "clue_benchmark"), default="f1")
    parser.add_argument("--use_crf", type=str2bool, default=False)
    parser.add_argument("--num_class", type=int, default=0, help="number of tags (default: from label2id)")
    parser.add_argument("--vocab_file_path", default="", help="vocab.txt the records were made with (checked)")
    parser.add_argument("--label2id_file_path", required=True)
    parser.add_argument("--eval_json_path", default="", help="CLUENER json of the eval set, for clue_benchmark")
    return parser.parse_args(argv)


def tag_sequences(outputs, use_crf: bool, id2label: dict[int, str]):
    """Predicted and gold tag sequences of the real tokens between [CLS] and [SEP] of each example."""
    *scores, input_mask, label_ids = outputs
    lengths = input_mask.sum(1)
    if use_crf:
        predicted = backtrack(scores[0], scores[1], lengths)
    else:
        predicted = [row[:length].tolist() for row, length in zip(scores[0].argmax(-1), lengths)]
    for path, gold, length in zip(predicted, label_ids, lengths):
        yield ([id2label[int(t)] for t in path[1:length - 1]], [id2label[int(t)] for t in gold[1:length - 1]])


def read_clue_texts(path: str) -> list[str]:
    """The "text" of every line of a CLUENER json file (read before training, so a bad file fails first)."""
    texts = []
    for number, line in text_lines(path, "--eval_json_path", "pass the CLUENER json of the eval set"):
        if line.strip():
            try:
                texts.append(json.loads(line)["text"])
            except (ValueError, KeyError, TypeError):
                raise ValueError(f"{path}:{number} is not a CLUENER json object with a \"text\"") from None
    return texts


def clue_submission(predicted: list[list[str]], texts: list[str], eval_json_path: str, output: Path) -> Path:
    """CLUENER2020 submission lines: {"id": i, "label": {type: {entity text: [[start, end]]}}}."""
    if len(texts) != len(predicted):
        raise ValueError(f"eval_json_path {eval_json_path} has {len(texts)} texts but the eval records "
                         f"{len(predicted)}: pass the json the eval records were converted from")
    with open(output, "w", encoding="utf-8") as handle:
        for index, (text, tags) in enumerate(zip(texts, predicted)):
            label: dict = {}
            for entity_type, start, end in sorted(entity_spans(tags), key=lambda s: s[1]):
                label.setdefault(entity_type, {}).setdefault(text[start:end + 1], []).append([start, end])
            handle.write(json.dumps({"id": index, "label": label}, ensure_ascii=False) + "\n")
    return output


def run(args: argparse.Namespace) -> dict | None:
    run_config, bert_config = prepare(args)
    label2id = load_ner_label2id(args.label2id_file_path)
    num_class = args.num_class or len(label2id)
    if num_class != len(label2id):
        raise ValueError(f"--num_class {num_class} does not match the {len(label2id)} labels of "
                         f"{args.label2id_file_path}: leave --num_class out or fix the label2id file")
    if args.vocab_file_path and sum(1 for _ in text_lines(args.vocab_file_path, "vocab file")) > bert_config.vocab_size:
        raise ValueError(f"vocab file {args.vocab_file_path} is larger than the model's vocab_size "
                         f"{bert_config.vocab_size}: pick the --bert_network the vocab belongs to")
    checkpoint = args.load_finetune_checkpoint_path
    clue_texts = None
    if args.do_eval:
        check_eval_records(args, bert_config, num_class)
        if args.assessment_method == "clue_benchmark":
            if not args.eval_json_path:
                raise ValueError("--eval_json_path is required with --assessment_method clue_benchmark")
            clue_texts = read_clue_texts(args.eval_json_path)
    if args.do_train:
        description = describe_run(args, "ner", num_class, label2id, use_crf=args.use_crf)
        checkpoint = finetune(args, run_config, BertTaggerWithLoss(bert_config, num_class, args.use_crf), PREFIX,
                              num_class, description)
        if args.check_only:
            return None
        print(f"finetuned checkpoint: {checkpoint}")
    if not args.do_eval:
        return None
    if not checkpoint:
        raise ValueError("--load_finetune_checkpoint_path is required with --do_eval true and --do_train false")
    if args.check_only:
        print(f"checks passed: evaluating {latest_checkpoint(checkpoint, PREFIX)}")
        return None
    model = BertTaggerDecoder(bert_config.replace(hidden_dropout_prob=0.0), num_class, args.use_crf)
    id2label = {index: label for label, index in label2id.items()}
    gold, predicted = [], []
    for outputs in predict(args, run_config, model, latest_checkpoint(checkpoint, PREFIX)):
        for predicted_tags, gold_tags in tag_sequences(outputs, args.use_crf, id2label):
            predicted.append(predicted_tags)
            gold.append(gold_tags)
    scores = entity_scores(gold, predicted)
    print(f"entity F1: {scores['f1']:.4f} (precision {scores['precision']:.4f}, recall {scores['recall']:.4f}; "
          f"{scores['gold_entities']} gold entities, {scores['predicted_entities']} predicted); "
          f"token accuracy: {scores['token_accuracy']:.4f}")
    output_dir = Path(args.output_dir)
    write_eval_result(output_dir, scores)
    if clue_texts is not None:
        submission = clue_submission(predicted, clue_texts, args.eval_json_path, output_dir / "cluener_predict.json")
        print(f"CLUENER submission: {submission}")
    return scores


def main(argv: list[str] | None = None) -> dict | None:
    return run_entry("run_ner.py", parse_args, run, argv)


if __name__ == "__main__":
    main()
