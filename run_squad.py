"""SQuAD v1.1 / v2.0 finetuning and evaluation, flags as the MindSpore model zoo's.

    python run_squad.py --do_train true --do_eval true --vocab_file_path vocab.txt \
        --train_data_file_path data/squad.tfrecord --eval_json_path dev-v1.1.json \
        --load_pretrain_checkpoint_path ckpt/bert_base_en.ckpt --bert_network ckpt/bert_base_en.yaml

Training records come from tools/convert_task_data.py --task squad; evaluation reads --eval_json_path itself
(doc stride windows, n-best post-processing back to the original text), writes predictions.json and
nbest_predictions.json to --output_dir and prints EM and F1 as the official v1.1 script computes them.

SQuAD v2.0: --version_2_with_negative true predicts "" (no answer) where the null score beats the best span by
more than --null_score_diff_threshold (Google's run_squad.py rule) and writes null_odds.json too; scoring follows
the official evaluate-v2.0.py (exact, f1, HasAns_*, NoAns_*) with that flag or when the evaluation file holds
questions without an answer. Train on v2.0 with records converted with --version_2_with_negative true.
"""
from __future__ import annotations

import argparse

import mindspore as ms
import numpy as np

from src.cli import ArgumentParser
from src.config import str2bool
from src.data.datasets import SQUAD_TRAIN_COLUMNS
from src.data.tokenization import FullTokenizer
from src.files.checkpoint import load_checkpoint_into
from src.files.run_files import latest_checkpoint
from src.model.task_heads import BertForQuestionAnswering, BertSquadWithLoss
from src.tasks.squad import (
    SquadExample,
    check_prediction_settings,
    check_window_settings,
    convert_examples_to_features,
    read_squad_examples,
    squad_evaluate,
    squad_evaluate_v2,
    write_predictions,
)
from src.train.finetune import add_common_flags, describe_run, finetune, prepare, run_entry, write_eval_result

PREFIX = "squad"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description="BERT SQuAD v1.1 / v2.0 finetuning")
    add_common_flags(parser, "finetune.yaml")
    parser.add_argument("--num_class", type=int, default=2, help="start and end: always 2")
    parser.add_argument("--vocab_file_path", default="", help="vocab.txt for reading --eval_json_path")
    parser.add_argument("--eval_json_path", default="", help="SQuAD v1.1 or v2.0 json to evaluate on")
    parser.add_argument("--do_lower_case", type=str2bool, default=True)
    parser.add_argument("--max_seq_length", type=int, default=384)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_query_length", type=int, default=64)
    parser.add_argument("--n_best_size", type=int, default=20)
    parser.add_argument("--max_answer_length", type=int, default=30)
    parser.add_argument("--version_2_with_negative", type=str2bool, default=False,
                        help="SQuAD v2.0: predict \"\" (no answer) by --null_score_diff_threshold")
    parser.add_argument("--null_score_diff_threshold", type=float, default=0.0,
                        help="predict \"\" when null score - best span score exceeds this")
    return parser.parse_args(argv)


def read_eval_inputs(args: argparse.Namespace) -> tuple[FullTokenizer, list[SquadExample]]:
    """The vocab and the questions of --eval_json_path, read before any training so a bad eval file fails first."""
    if not (args.eval_json_path and args.vocab_file_path):
        raise ValueError("--eval_json_path and --vocab_file_path are required with --do_eval true")
    return FullTokenizer(args.vocab_file_path, args.do_lower_case), read_squad_examples(args.eval_json_path)


def evaluate(args: argparse.Namespace, model: BertForQuestionAnswering, batch_size: int, tokenizer: FullTokenizer,
             examples: list[SquadExample]) -> tuple[dict[str, float], str]:
    """Scores of --eval_json_path, and which official script's scoring gave them (v2.0 with
    --version_2_with_negative or when the file holds questions without an answer, else v1.1)."""
    features = convert_examples_to_features(examples, tokenizer, args.max_seq_length, args.doc_stride,
                                            args.max_query_length, is_training=False)
    results = {}
    for begin in range(0, len(features), batch_size):
        batch = features[begin:begin + batch_size]
        inputs = [ms.Tensor(np.array([getattr(f, name) for f in batch], np.int32))
                  for name in ("input_ids", "input_mask", "segment_ids")]
        start_logits, end_logits = (x.asnumpy() for x in model(*inputs))
        for feature, start, end in zip(batch, start_logits, end_logits):
            results[feature.unique_id] = (start, end)
    predictions = write_predictions(examples, features, results, tokenizer, args.n_best_size, args.max_answer_length,
                                    args.output_dir, args.version_2_with_negative, args.null_score_diff_threshold)
    if args.version_2_with_negative:
        return squad_evaluate_v2(examples, predictions), "SQuAD v2.0 scoring: --version_2_with_negative true"
    unanswerable = sum(example.is_impossible for example in examples)
    if unanswerable:
        return squad_evaluate_v2(examples, predictions), (
            f"SQuAD v2.0 scoring: {unanswerable} questions without an answer; pass --version_2_with_negative true to "
            f"predict no-answer")
    return squad_evaluate(examples, predictions), "SQuAD v1.1 scoring"


def run(args: argparse.Namespace) -> dict | None:
    check_window_settings(args.max_seq_length, args.doc_stride, args.max_query_length)
    check_prediction_settings(args.n_best_size, args.max_answer_length)
    run_config, bert_config = prepare(args)
    eval_inputs = read_eval_inputs(args) if args.do_eval else None
    checkpoint = args.load_finetune_checkpoint_path
    if args.do_train:
        description = describe_run(args, "squad", 2, do_lower_case=args.do_lower_case,
                                   max_seq_length=args.max_seq_length, doc_stride=args.doc_stride,
                                   max_query_length=args.max_query_length)
        checkpoint = finetune(args, run_config, BertSquadWithLoss(bert_config), PREFIX, None, description,
                              columns=SQUAD_TRAIN_COLUMNS)
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
    model = BertForQuestionAnswering(bert_config.replace(hidden_dropout_prob=0.0))
    load_checkpoint_into(model, latest_checkpoint(checkpoint, PREFIX))
    model.set_train(False)
    scores, scoring = evaluate(args, model, run_config.batch_size, *eval_inputs)
    outputs = ("predictions.json, nbest_predictions.json and null_odds.json" if args.version_2_with_negative
               else "predictions.json and nbest_predictions.json")
    figures = ", ".join(f"{key}: {value:.2f}" if isinstance(value, float) else f"{key}: {value}"
                        for key, value in scores.items())
    print(f"{figures} ({scoring}; {outputs} in {args.output_dir})")
    write_eval_result(args.output_dir, scores)
    return scores


def main(argv: list[str] | None = None) -> dict | None:
    return run_entry("run_squad.py", parse_args, run, argv)


if __name__ == "__main__":
    main()
