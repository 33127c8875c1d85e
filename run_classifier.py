"""Sentence (pair) classification or regression finetuning and evaluation, flags as the MindSpore model zoo's.

    python run_classifier.py --do_train true --do_eval true --num_class 2 --assessment_method accuracy \
        --train_data_file_path data/train.tfrecord --eval_data_file_path data/dev.tfrecord \
        --load_pretrain_checkpoint_path ckpt/bert_base_zh.ckpt --bert_network ckpt/bert_base_zh.yaml

Records come from tools/convert_task_data.py --task classification. --num_class 1 trains a regression head
(STS-B style; evaluate it with --assessment_method spearman_correlation).
"""
from __future__ import annotations

import argparse

import numpy as np

from src.cli import ArgumentParser, check_minimums
from src.files.run_files import latest_checkpoint
from src.model.task_heads import BertClassifierWithLoss, BertForSequenceClassification
from src.tasks.metrics import ASSESSMENT_METHODS, classification_score
from src.tasks.task_files import load_label2id
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

PREFIX = "classifier"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description="BERT classification finetuning")
    add_common_flags(parser, "finetune.yaml")
    parser.add_argument("--assessment_method", choices=ASSESSMENT_METHODS, default="accuracy")
    parser.add_argument("--num_class", type=int, default=2, help="number of classes; 1 for a regression")
    parser.add_argument("--vocab_file_path", default="",
                        help="vocab.txt the records were made with (default: from their task card), kept for "
                             "predict.py")
    parser.add_argument("--label2id_file_path", default="",
                        help="label2id the records were made with (default: from their task card), kept for predict.py")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> dict | None:
    check_minimums(args, num_class=1)
    run_config, bert_config = prepare(args)
    float_columns = ("label_ids",) if args.num_class == 1 else ()
    checkpoint = args.load_finetune_checkpoint_path
    if args.do_eval:
        check_eval_records(args, bert_config, args.num_class if args.num_class > 1 else None)
    if args.do_train:
        label2id = load_label2id(args.label2id_file_path) if args.label2id_file_path else None
        description = describe_run(args, "classification", args.num_class, label2id,
                                   classifier_pooling=run_config.classifier_pooling)
        checkpoint = finetune(args, run_config,
                              BertClassifierWithLoss(bert_config, args.num_class, run_config.classifier_pooling),
                              PREFIX, args.num_class if args.num_class > 1 else None, description, float_columns)
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
    model = BertForSequenceClassification(bert_config.replace(hidden_dropout_prob=0.0), args.num_class,
                                          run_config.classifier_pooling)
    labels, predictions = [], []
    for logits, _, label_ids in predict(args, run_config, model, latest_checkpoint(checkpoint, PREFIX),
                                        float_columns):
        predictions.extend(logits.reshape(-1) if args.num_class == 1 else logits.argmax(-1))
        labels.extend(label_ids.reshape(-1))
    score = classification_score(args.assessment_method, np.array(labels), np.array(predictions))
    majority = float(np.mean(np.array(labels) == np.bincount(np.array(labels, int)).argmax())) \
        if args.num_class > 1 else None
    result = {args.assessment_method: score, "examples": len(labels), "majority_class_accuracy": majority}
    print(f"{args.assessment_method}: {score:.4f} over {len(labels)} examples"
          + (f" (majority class: {majority:.4f})" if majority is not None else ""))
    write_eval_result(args.output_dir, result)
    return result


def main(argv: list[str] | None = None) -> dict | None:
    return run_entry("run_classifier.py", parse_args, run, argv)


if __name__ == "__main__":
    main()
