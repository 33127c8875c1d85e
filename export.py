"""Export a finetuned (or pretrained) checkpoint to MindIR or ONNX for serving, flags as the model zoo's export.py.

    python export.py --ckpt_file ner_ckpt/ --file_name ner --file_format MINDIR            # ner.mindir
    python export.py --ckpt_file ner_ckpt/ --file_name ner --file_format ONNX --batch_size 8
    python export.py --ckpt_file pretrain_ckpt/ --bert_network base --file_name bert --file_format MINDIR

The graph takes input_ids, input_mask, segment_ids (int32 [batch, max_seq_length]) and returns the task's scores:
classification logits, NER tag scores (a CRF decodes them on the host: predict.py), SQuAD start and end
logits; a checkpoint without a finetuning description (run_pretrain.py's) exports the encoder: sequence output
and pooled output. --batch_size 0 exports MindIR with a dynamic batch size; MindSpore writes ONNX with fixed
shapes only. ONNX export computes GELU's erf by a polynomial (MindSpore's ONNX exporter has no Erf; error
1.5e-6 in float32). After writing, the file is loaded back (MindSpore GraphCell, onnxruntime) and its outputs
compared with the checkpoint's graph; the largest difference is printed, and more than 1e-4 fails the export.

Before any graph is built the shapes are checked, each mismatch refused in one line: --max_seq_length (default:
the finetuning run's task card; min(128, max_position_embeddings) for a pretrained checkpoint) at most the model's
max_position_embeddings (NEZHA's relative-position table is built for as many positions), the vocab beside a
finetuned checkpoint no larger than the model's vocab_size, and every encoder weight of the checkpoint used by the
model (a BERT checkpoint with a NEZHA config would otherwise lose its position embeddings silently). predict.py
checks a --model_file against the task card in the same way (src/serve/backends.py).
"""
from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from src.cli import ArgumentParser, run_cli
from src.config import BertConfig, load_bert_config, str2bool
from src.files.run_files import CHECKPOINT_NAME, latest_checkpoint
from src.model.bert import BertModel
from src.model.task_heads import numpy_outputs
from src.serve.backends import (
    MindIRBackend,
    OnnxBackend,
    check_model_fits,
    load_weights,
    make_onnx_exportable,
    task_network,
)
from src.tasks.task_card import TaskCard, run_card_of
from src.train.distributed import compute_type_for_device, setup_device

PREFIXES = ("classifier", "ner", "squad", "checkpoint_bert")
TOLERANCE = 1e-4


class Encoder(nn.Cell):
    """BertModel with the task graphs' input order: (input_ids, input_mask, segment_ids)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))

    def construct(self, input_ids, input_mask, segment_ids):
        return self.bert(input_ids, segment_ids, input_mask)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt_file", "--export_ckpt_file", dest="ckpt_file", required=True,
                        help="a checkpoint, or the directory a finetuning or pretraining run saved into")
    parser.add_argument("--file_name", "--export_file_name", dest="file_name", required=True,
                        help="output path; .mindir / .onnx is added unless it ends in it")
    parser.add_argument("--file_format", type=str.upper, choices=("MINDIR", "ONNX"), default="MINDIR",
                        help="MINDIR or ONNX (either case)")
    parser.add_argument("--batch_size", type=int, default=1, help="0: dynamic batch size (MINDIR only)")
    parser.add_argument("--bert_network", default="",
                        help="model preset or YAML, for a checkpoint without a finetuning description (pretrained)")
    parser.add_argument("--max_seq_length", type=int, default=0,
                        help="at most the model's max_position_embeddings; default: the finetuning run's (its task "
                             "card, what predict.py feeds the file); for a pretrained checkpoint "
                             "min(128, max_position_embeddings)")
    parser.add_argument("--overwrite", type=str2bool, default=False, help="replace an existing output file")
    parser.add_argument("--device_target", choices=("Ascend", "GPU", "CPU"), default=None)
    parser.add_argument("--device_id", type=int, default=0)
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Plan:
    """What will be exported, settled and checked before any graph is built."""

    config: BertConfig
    card: TaskCard | None
    seq_length: int
    what: str
    model_source: str


def plan_export(args: argparse.Namespace, checkpoint: Path) -> Plan:
    """The model the checkpoint is for and the sequence length to export, checked against each other and against
    the task card and vocab beside the checkpoint: one line naming the flag (or file) and the model's limit, before
    MindSpore sees a shape it would fail on with its C++ stack (and an IR dump in the working directory)."""
    description = run_card_of(checkpoint) if CHECKPOINT_NAME.match(checkpoint.name) else None
    if description is not None and description.card_file.is_file():
        card, vocab, config = description.read()
        model_source, what, default = str(description.model_file), card.task, card.max_seq_length
        check_model_fits(card, config, description.card_file, vocab, model_source)
    else:
        if not args.bert_network:
            raise ValueError(f"checkpoint {checkpoint} has no finetuning description beside it (a pretrained "
                             f"checkpoint?): pass --bert_network, the model preset or YAML it was trained with")
        card, config, what = None, load_bert_config(args.bert_network), "encoder"
        model_source = f"--bert_network {args.bert_network}"
        default = min(128, config.max_position_embeddings)
    seq_length = args.max_seq_length or default
    limit = config.max_position_embeddings
    if seq_length > limit:
        kind = ("its relative-position table covers" if config.use_relative_positions else
                "it has position embeddings for")
        raise ValueError(f"--max_seq_length {seq_length} exceeds the model's max_position_embeddings {limit} "
                         f"({model_source}; {kind} {limit} positions): pass --max_seq_length {limit} or less")
    if card is not None and seq_length != card.max_seq_length:
        print(f"note: --max_seq_length {seq_length} differs from the finetuning run's {card.max_seq_length}: "
              f"predict.py --model_file reads files of the run's length only", flush=True)
    return Plan(config, card, seq_length, what, model_source)


def build_graph(plan: Plan, checkpoint: Path) -> nn.Cell:
    """The graph to export with the checkpoint's weights."""
    config = compute_type_for_device(plan.config)
    network = task_network(plan.card, config) if plan.card is not None else Encoder(config)
    load_weights(network, checkpoint, plan.model_source)
    network.set_train(False)
    return network


def check_output_place(target: Path) -> None:
    """The directory of --file_name can be made and written to (checked before the minutes of an export)."""
    directory = target.parent
    existing = next(parent for parent in (directory, *directory.parents) if parent.exists() or parent == parent.parent)
    if not existing.is_dir():
        raise ValueError(f"--file_name {target.with_suffix('')}: {existing} is a file, not a directory: pass a "
                         f"--file_name in a directory")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"--file_name {target.with_suffix('')}: directory {existing} is not writable: pass a "
                         f"--file_name in a directory you can write to")
    if target.is_dir():
        raise ValueError(f"--file_name {target.with_suffix('')}: {target} is a directory: pass another --file_name")


def sample_inputs(batch: int, seq_length: int, vocab_size: int) -> list[np.ndarray]:
    """Inputs for the check after export: token ids over the vocab, the second half of odd rows padded."""
    rng = np.random.default_rng(0)
    input_ids = rng.integers(5, vocab_size, (batch, seq_length)).astype(np.int32)
    input_mask = np.ones((batch, seq_length), np.int32)
    input_mask[1::2, seq_length // 2:] = 0
    segment_ids = np.zeros((batch, seq_length), np.int32)
    segment_ids[:, seq_length // 3:] = 1
    return [input_ids * input_mask, input_mask, segment_ids * input_mask]


def export(args: argparse.Namespace) -> dict:
    if args.batch_size < 0 or (args.batch_size == 0 and args.file_format == "ONNX"):
        raise ValueError(f"--batch_size {args.batch_size}: pass a batch size of at least 1"
                         + (" (MindSpore exports ONNX with fixed shapes)" if args.file_format == "ONNX" else
                            ", or 0 for a dynamic batch size"))
    if args.max_seq_length < 0:
        raise ValueError(f"--max_seq_length {args.max_seq_length} is out of range: pass a length of at least 1, or "
                         f"leave it out for the model's (finetuning run's) length")
    suffix = f".{args.file_format.lower()}"
    file_name = args.file_name[:-len(suffix)] if args.file_name.lower().endswith(suffix) else args.file_name
    target = Path(f"{file_name}{suffix}")
    if target.exists() and not args.overwrite:
        raise ValueError(f"{target} exists: pass --overwrite true to replace it, or another --file_name")
    check_output_place(target)
    checkpoint = latest_checkpoint(args.ckpt_file, PREFIXES)  # a file, or the newest of a run directory
    plan = plan_export(args, checkpoint)
    seq_length, what = plan.seq_length, plan.what
    setup_device(args.device_target, args.device_id)
    network = build_graph(plan, checkpoint)
    vocab_size = plan.config.vocab_size
    check_inputs = sample_inputs(args.batch_size or 2, seq_length, vocab_size)
    expected = numpy_outputs(network(*(Tensor(a) for a in check_inputs)))
    if args.file_format == "ONNX":
        make_onnx_exportable(network)
    spec = Tensor(shape=[args.batch_size or None, seq_length], dtype=ms.int32)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial")
    written = Path(f"{partial}.{args.file_format.lower()}")
    try:
        ms.export(network, spec, spec, spec, file_name=str(partial), file_format=args.file_format)
        backend = MindIRBackend(written) if args.file_format == "MINDIR" else OnnxBackend(written)
        difference = max(float(np.abs(got - want).max()) for got, want in zip(backend(*check_inputs), expected))
        if not difference <= TOLERANCE:
            raise ValueError(f"the exported {args.file_format} graph differs from the checkpoint's by {difference:.2e} "
                             f"(more than {TOLERANCE}): not written; report this with --debug output")
        os.replace(written, target)
    finally:
        written.unlink(missing_ok=True)
    batch = args.batch_size or "dynamic"
    print(f"wrote {target}: the {what} graph of {checkpoint.name}, inputs [{batch}, {seq_length}]; loaded back, its "
          f"outputs differ from the checkpoint's by at most {difference:.1e}", flush=True)
    return {"file": str(target), "max_difference": difference, "task": what}


def main(argv: list[str] | None = None) -> dict:
    return run_cli("export.py", lambda arguments: export(parse_args(arguments)), argv)


if __name__ == "__main__":
    main()
