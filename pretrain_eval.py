"""Masked-LM and next-sentence accuracy of a pretraining checkpoint on evaluation records.

    python pretrain_eval.py --data_dir eval_records/ --load_checkpoint_path ckpt_0/ --config configs/pretrain.yaml

Beside each accuracy it prints the baseline a model must beat to have learned anything from context: always
predicting the most frequent masked token (MLM), and always predicting the more frequent NSP label of these records.
"""
from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from src.cli import ArgumentParser, run_cli
from src.config import load_bert_config, load_run_config
from src.data.datasets import RecordSource, check_records, record_batches
from src.files.checkpoint import load_checkpoint_into
from src.files.paths import check_apart
from src.files.run_files import latest_checkpoint
from src.files.staging import write_text_atomically
from src.model.pretraining import BertPretrainingAccuracy
from src.train.distributed import compute_type_for_device, setup_device


@dataclass
class PretrainingAccuracy:
    mlm_accuracy: float
    nsp_accuracy: float
    masked_tokens: int
    sequences: int
    most_frequent_token_accuracy: float
    majority_nsp_accuracy: float


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description="MLM / NSP accuracy of a pretraining checkpoint")
    parser.add_argument("--data_dir", required=True, help="directory of evaluation records")
    parser.add_argument("--schema_dir", default="", help="schema json of the TFRecords (optional)")
    parser.add_argument("--dataset_format", choices=("tfrecord", "mindrecord"), default="tfrecord")
    parser.add_argument("--load_checkpoint_path", required=True,
                        help="a checkpoint, or a directory of checkpoint_bert-*.ckpt (the newest is used)")
    parser.add_argument("--config", default=str(Path(__file__).parent / "configs" / "pretrain.yaml"),
                        help="the run config the checkpoint was trained with (its bert_network and batch_size)")
    parser.add_argument("--bert_network", default="",
                        help="model preset or YAML, overriding the config's bert_network")
    parser.add_argument("--device_target", choices=("Ascend", "GPU", "CPU"), default=None)
    parser.add_argument("--device_id", type=int, default=0)
    parser.add_argument("--output_file", default="", help="also write the figures to this JSON file")
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace) -> PretrainingAccuracy:
    check_apart({"--output_file": args.output_file},
                {"--data_dir": args.data_dir, "--load_checkpoint_path": args.load_checkpoint_path})
    run_config = load_run_config(args.config, bert_network=args.bert_network or None)
    setup_device(args.device_target, args.device_id)
    bert_config = compute_type_for_device(load_bert_config(run_config.bert_network)).replace(
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    network = BertPretrainingAccuracy(bert_config)
    network.set_train(False)
    load_checkpoint_into(network, latest_checkpoint(args.load_checkpoint_path))
    source = RecordSource(args.data_dir, args.dataset_format, args.schema_dir or None)
    check_records(source, model=bert_config)
    dataset = record_batches(source, batch_size=run_config.batch_size).dataset
    totals = np.zeros(4)
    label_counts: Counter = Counter()
    next_sentence_counts: Counter = Counter()
    for batch in dataset.create_tuple_iterator():
        totals += [float(x.asnumpy()) for x in network(*batch)]
        ids, weights = batch[5].asnumpy().reshape(-1), batch[6].asnumpy().reshape(-1)
        label_counts.update(ids[weights > 0].tolist())
        next_sentence_counts.update(batch[3].asnumpy().reshape(-1).tolist())
    mlm_hits, masked, nsp_hits, sequences = totals
    return PretrainingAccuracy(mlm_accuracy=mlm_hits / masked, nsp_accuracy=nsp_hits / sequences,
                               masked_tokens=int(masked), sequences=int(sequences),
                               most_frequent_token_accuracy=label_counts.most_common(1)[0][1] / masked,
                               majority_nsp_accuracy=next_sentence_counts.most_common(1)[0][1] / sequences)


def evaluate_and_report(argv: list[str]) -> PretrainingAccuracy:
    args = parse_args(argv)
    result = evaluate(args)
    print(f"MLM accuracy: {result.mlm_accuracy:.4f} over {result.masked_tokens} masked tokens "
          f"(most frequent token: {result.most_frequent_token_accuracy:.4f}); "
          f"NSP accuracy: {result.nsp_accuracy:.4f} over {result.sequences} sequences "
          f"(majority label: {result.majority_nsp_accuracy:.4f})")
    if args.output_file:
        write_text_atomically(Path(args.output_file), json.dumps(asdict(result), indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> PretrainingAccuracy:
    return run_cli("pretrain_eval.py", evaluate_and_report, argv)


if __name__ == "__main__":
    main()
