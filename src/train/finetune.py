"""What the finetuning scripts share: seed flags, training from a pretrained checkpoint, prediction, and the
description of the model (src/tasks/task_card.py) written beside its checkpoints.

Training goes through src/train/loop.train (the same train-one-step cell, optimizer factory, logging and
checkpoints as pretraining); the optimizer honours the config's weight decay and its LayerNorm/bias exclusion.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path
from typing import Callable, Iterator

import mindspore as ms
import numpy as np
from mindspore import nn
from tqdm import tqdm

from src.cli import check_minimums, run_cli
from src.config import CONFIG_DIR, BertConfig, RunConfig, load_bert_config, load_run_config, str2bool
from src.data.datasets import (
    TASK_COLUMNS,
    RecordSource,
    check_records,
    largest_label,
    record_batches,
    record_seq_length,
)
from src.files.checkpoint import load_checkpoint_into
from src.files.paths import check_apart
from src.files.run_files import latest_checkpoint
from src.files.staging import file_sha256, write_text_atomically
from src.model.task_heads import numpy_outputs
from src.tasks.task_card import RunCard, TaskCard, read_records_card, records_card_path
from src.train.distributed import compute_type_for_device, setup_device
from src.train.loop import CheckpointPolicy, train

TASK_HEADS = ("classifier.", "crf.", "qa_outputs.")  # parameters a pretraining checkpoint does not have
TASK_INPUTS = ("--train_data_file_path", "--eval_data_file_path", "--schema_file_path", "--vocab_file_path",
               "--label2id_file_path", "--eval_json_path")  # flags some task scripts have: outputs stay out of them


def add_common_flags(parser: argparse.ArgumentParser, default_config: str) -> None:
    """The flags every finetuning script of the model zoo takes, with its names."""
    parser.add_argument("--device_target", choices=("Ascend", "GPU", "CPU"), default=None,
                        help="default: the best device present (Ascend, then GPU, then CPU)")
    parser.add_argument("--do_train", type=str2bool, default=False)
    parser.add_argument("--do_eval", type=str2bool, default=False)
    parser.add_argument("--device_id", type=int, default=0)
    parser.add_argument("--epoch_num", type=int, default=3)
    parser.add_argument("--train_data_shuffle", type=str2bool, default=True)
    parser.add_argument("--eval_data_shuffle", type=str2bool, default=False)
    parser.add_argument("--save_finetune_checkpoint_path", default="./finetune_ckpt")
    parser.add_argument("--load_pretrain_checkpoint_path", default="",
                        help="pretrained weights (run_pretrain.py or tools/convert_checkpoint.py output)")
    parser.add_argument("--load_finetune_checkpoint_path", default="",
                        help="finetuned checkpoint to evaluate (file or directory; default: the one trained now); "
                             "with --do_train true, the checkpoint of an interrupted finetuning run to continue")
    parser.add_argument("--train_data_file_path", default="")
    parser.add_argument("--eval_data_file_path", default="")
    parser.add_argument("--schema_file_path", default="", help="schema json of the TFRecords (optional)")
    parser.add_argument("--dataset_format", choices=("tfrecord", "mindrecord"), default="tfrecord")
    parser.add_argument("--config", default=str(CONFIG_DIR / default_config),
                        help="run config YAML: bert_network, batch_size, optimizer and its settings")
    parser.add_argument("--bert_network", default="", help="model preset or YAML, overriding the config's")
    parser.add_argument("--output_dir", default=".", help="where train_log.txt, metrics.jsonl, eval results go")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed of the head's initialisation, dropout and shuffling (default: the config's)")
    parser.add_argument("--check_only", type=str2bool, default=False,
                        help="check flags, config, data and output places as a run would, then exit without "
                             "training (the launchers run this before going to the background)")


def prepare(args: argparse.Namespace) -> tuple[RunConfig, BertConfig]:
    if not (args.do_train or args.do_eval):
        raise ValueError("nothing to do: pass --do_train true and/or --do_eval true")
    check_minimums(args, epoch_num=1)
    check_apart({"--output_dir": args.output_dir,
                 "--save_finetune_checkpoint_path": args.save_finetune_checkpoint_path},
                {flag: getattr(args, flag.lstrip("-"), "") for flag in TASK_INPUTS})
    run_config = load_run_config(args.config, bert_network=args.bert_network or None)
    if run_config.objective != RunConfig.objective:
        raise ValueError(f"run config {args.config} sets objective '{run_config.objective}', which only "
                         f"pretraining reads (run_pretrain.py): remove it")
    if args.seed is not None:
        run_config = dataclasses.replace(run_config, seed=args.seed)
    setup_device(args.device_target, args.device_id)
    ms.set_seed(run_config.seed)
    ms.dataset.config.set_seed(run_config.seed)
    return run_config, compute_type_for_device(run_config.model_config(load_bert_config(run_config.bert_network)))


def check_labels(path: str | Path, dataset_format: str, num_labels: int) -> None:
    largest = largest_label(path, dataset_format)
    if largest >= num_labels:
        raise ValueError(f"data {path} holds label id {largest} but --num_class is {num_labels}: pass the number of "
                         f"labels in the label2id file the records were made with")


def eval_source(args: argparse.Namespace, float_columns: tuple[str, ...]) -> RecordSource:
    return RecordSource(args.eval_data_file_path, args.dataset_format, args.schema_file_path or None, TASK_COLUMNS,
                        float_columns)


def check_eval_records(args: argparse.Namespace, bert_config: BertConfig, num_labels: int | None) -> None:
    """Before any training: the evaluation records exist, read in full, fit the model and its labels, so a bad
    eval file fails now, not after the training it would have scored."""
    if not args.eval_data_file_path:
        raise ValueError("--eval_data_file_path is required with --do_eval true")
    check_records(eval_source(args, () if num_labels else ("label_ids",)), model=bert_config)
    if num_labels:
        check_labels(args.eval_data_file_path, args.dataset_format, num_labels)


def describe_run(args: argparse.Namespace, task: str, num_class: int, label2id: dict[str, int] | None = None,
                 **settings) -> tuple[TaskCard, Path | None]:
    """The model's description for predict.py and export.py, and the vocab to copy beside the checkpoints:
    from the training records' card (tools/convert_task_data.py) and the flags, checked against each other, so
    a vocab or label file other than the records were made with fails before training.

    settings: the head's (num_class is given; use_crf, classifier_pooling) and, where the records have no card,
    the tokenizer's and windows' (do_lower_case, max_seq_length, doc_stride, max_query_length)."""
    records = args.train_data_file_path
    card = read_records_card(records)
    source = records_card_path(records)
    if card is not None and card.task != task:
        raise ValueError(f"{records} holds {card.task} records ({source}): convert the data with "
                         f"tools/convert_task_data.py --task {task}")
    labels = tuple(sorted(label2id, key=label2id.get)) if label2id else ()
    if card is not None and card.labels and labels and labels != card.labels:
        raise ValueError(f"label2id file {args.label2id_file_path} gives the labels {', '.join(labels)} but "
                         f"{records} was made with {', '.join(card.labels)} ({source}): pass the label2id file the "
                         f"records were converted with")
    labels = labels or (card.labels if card is not None else ())
    if task == "classification" and num_class > 1:
        if labels and len(labels) != num_class:
            raise ValueError(f"--num_class {num_class} does not match the {len(labels)} labels {records} was made "
                             f"with ({source}): pass --num_class {len(labels)}")
        labels = labels or tuple(str(index) for index in range(num_class))
    vocab = _run_vocab(args, card, source)
    if card is None:
        card = TaskCard(task=task, max_seq_length=settings.get("max_seq_length")
                        or record_seq_length(records, args.dataset_format))
    return dataclasses.replace(card, labels=labels, num_class=num_class, vocab_file="", **settings), vocab


def _run_vocab(args: argparse.Namespace, card: TaskCard | None, source: Path) -> Path | None:
    flag = getattr(args, "vocab_file_path", "")
    if flag:
        if card is not None and card.vocab_sha256 and file_sha256(flag) != card.vocab_sha256:
            raise ValueError(f"vocab file {flag} is not the vocab {args.train_data_file_path} was made with "
                             f"({card.vocab_file or 'see ' + str(source)}): pass that vocab")
        return Path(flag)
    if card is not None and Path(card.vocab_file).is_file() and file_sha256(card.vocab_file) == card.vocab_sha256:
        return Path(card.vocab_file)
    print("note: the vocab the records were made with is unknown (no --vocab_file_path, and no task card beside "
          "the records or its vocab has moved): predict.py will need --vocab_file_path", flush=True)
    return None


def finetune(args: argparse.Namespace, run_config: RunConfig, network: nn.Cell, prefix: str,
             num_labels: int | None, description: tuple[TaskCard, Path | None], float_columns: tuple[str, ...] = (),
             columns: tuple[str, ...] = TASK_COLUMNS) -> Path:
    """Train network (a ...WithLoss task cell) on the training records; returns the last checkpoint.

    num_labels: checked against the label ids of the records (None for a regression).
    description: (card, vocab) from describe_run, written beside the checkpoints (src/tasks/task_card.RunCard).
    --load_finetune_checkpoint_path with training continues an interrupted run from that checkpoint (weights,
    optimizer state, step, learning-rate position), as run_pretrain.py does with --load_checkpoint_path."""
    if not args.train_data_file_path:
        raise ValueError("--train_data_file_path is required with --do_train true")
    if num_labels is not None:
        check_labels(args.train_data_file_path, args.dataset_format, num_labels)
    if args.load_pretrain_checkpoint_path:
        load_checkpoint_into(network, latest_checkpoint(args.load_pretrain_checkpoint_path), allow_missing=TASK_HEADS)
    else:
        print("note: no --load_pretrain_checkpoint_path: finetuning starts from random weights", flush=True)

    source = RecordSource(args.train_data_file_path, args.dataset_format, args.schema_file_path or None, columns,
                          float_columns)
    check_records(source, model=network.bert.config)
    batches = record_batches(source, batch_size=run_config.batch_size, shuffle=args.train_data_shuffle,
                             shuffle_buffer=run_config.shuffle_buffer)
    checkpoints = CheckpointPolicy(Path(args.save_finetune_checkpoint_path), every=batches.per_epoch, keep=1,
                                   prefix=prefix, flag="--save_finetune_checkpoint_path",
                                   resume_flag="--load_finetune_checkpoint_path")
    card, vocab = description
    return train(network, run_config, batches, total_steps=args.epoch_num * batches.per_epoch,
                 output_dir=Path(args.output_dir), checkpoints=checkpoints,
                 resume_from=args.load_finetune_checkpoint_path,
                 data_source=f"--train_data_file_path {args.train_data_file_path}", check_only=args.check_only,
                 describe=lambda directory, run: RunCard(directory, run).write(card, vocab, network.bert.config))


def predict(args: argparse.Namespace, run_config: RunConfig, model: nn.Cell, checkpoint: str | Path,
            float_columns: tuple[str, ...] = ()) -> Iterator[tuple[np.ndarray, ...]]:
    """(model outputs, input_mask, label_ids) as numpy for every batch of the evaluation records, which
    check_eval_records has checked before any training."""
    load_checkpoint_into(model, checkpoint)
    model.set_train(False)
    batches = record_batches(eval_source(args, float_columns), batch_size=run_config.batch_size,
                             shuffle=args.eval_data_shuffle, drop_remainder=False)
    rows = batches.dataset.create_tuple_iterator(num_epochs=1)
    # a bar on a terminal only (disable=None), cleared when done
    for input_ids, input_mask, segment_ids, label_ids in tqdm(rows, total=batches.per_epoch, desc="evaluating",
                                                              unit="batch", leave=False, disable=None):
        yield (*numpy_outputs(model(input_ids, input_mask, segment_ids)), input_mask.asnumpy(), label_ids.asnumpy())


def write_eval_result(output_dir: str | Path, result: dict) -> Path:
    path = Path(output_dir) / "eval_result.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_text_atomically(path, json.dumps(result, indent=2) + "\n")


def run_entry(script: str, parse_args: Callable[[list[str] | None], argparse.Namespace],
              run: Callable[[argparse.Namespace], dict | None], argv: list[str] | None) -> dict | None:
    """An entry script's main: bad input ends the program with one line naming the script."""
    return run_cli(script, lambda arguments: run(parse_args(arguments)), argv)
