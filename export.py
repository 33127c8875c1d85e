"""Export a finetuned (or pretrained) checkpoint to MindIR or ONNX for serving, flags as the model zoo's export.py.

    python export.py --ckpt_file ner_ckpt/ --file_name ner --file_format MINDIR            # ner.mindir
    python export.py --ckpt_file ner_ckpt/ --file_name ner --file_format ONNX --batch_size 8
    python export.py --ckpt_file ner_ckpt/ --file_name ner --file_format ONNX --batch_size 0 --optimize true
    python export.py --ckpt_file ner_ckpt/ --file_name ner --file_format ONNX --batch_size 0 --quantize int8 \
        --calibration_file dev.json    # int8: entity F1 of the int8 file and of float32 on dev.json, on its card
    python export.py --ckpt_file pretrain_ckpt/ --bert_network base --file_name bert --file_format MINDIR

The graph takes input_ids, input_mask, segment_ids (int32 [batch, max_seq_length]) and returns the task's scores:
classification logits, NER tag scores (a CRF decodes them on the host: predict.py), SQuAD start and end
logits; a checkpoint without a finetuning description (run_pretrain.py's) exports the encoder: sequence output
and pooled output. --batch_size 0 exports MindIR with a dynamic batch size, ONNX with dynamic batch and sequence
axes. MindIR is MindSpore's export; ONNX is written from the checkpoint's weights in standard ONNX ops (Erf GELU,
MatMul + Add, LayerNormalization: src/serve/onnx_graph.py) that onnxruntime's transformer optimizer fuses:
--optimize true runs it (Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization; NEZHA's
relative-position attention has no fused kernel) and fails when the fusions are absent; --quantize int8 applies
onnxruntime's dynamic int8 quantization to the (optimized) graph. After writing, the file is loaded back
(MindSpore GraphCell, onnxruntime) and its outputs compared with the checkpoint's graph (a dynamic ONNX file at
two shapes); the largest difference is printed, and more than 1e-4 fails the export (int8: its difference from
the float32 graph is printed, not checked). int8 also measures the task's score of the int8 file and of the float32
graph through predict.py's pipeline on --calibration_file (a labelled file of the kind predict.py reads:
classification label_text or clue_json, accuracy; NER cluener_json, entity F1; SQuAD is not measured, with a note):
the run's task card does not record the records the model was evaluated on, so the file is required. Both scores are
printed and written on the task card beside the exported file ({file}.task.json: the run's card and "int8").

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
from src.data.tokenization import FullTokenizer
from src.files.run_files import CHECKPOINT_NAME, latest_checkpoint
from src.files.staging import write_text_atomically
from src.model.bert import BertModel
from src.model.task_heads import numpy_outputs
from src.serve.backends import (
    MindIRBackend,
    OnnxBackend,
    check_model_fits,
    crf_weights,
    load_weights,
    task_network,
)
from src.serve.onnx_graph import counts_text, optimize_onnx, quantize_int8, write_task_onnx
from src.serve.pipelines import task_score
from src.serve.prediction_files import SCORED_FORMATS, ScoredInputs, read_scored_inputs
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
    parser.add_argument("--batch_size", type=int, default=1,
                        help="0: dynamic batch size (ONNX: dynamic batch and sequence length)")
    parser.add_argument("--bert_network", default="",
                        help="model preset or YAML, for a checkpoint without a finetuning description (pretrained)")
    parser.add_argument("--max_seq_length", type=int, default=0,
                        help="at most the model's max_position_embeddings; default: the finetuning run's (its task "
                             "card, what predict.py feeds the file); for a pretrained checkpoint "
                             "min(128, max_position_embeddings)")
    parser.add_argument("--optimize", type=str2bool, default=False,
                        help="ONNX: run onnxruntime's transformer optimizer (fused Attention, SkipLayerNormalization, "
                             "BiasGelu) and write the optimized graph")
    parser.add_argument("--quantize", type=str.lower, choices=("none", "int8"), default="none",
                        help="ONNX: int8 writes onnxruntime's dynamic int8 quantization of the (optimized) graph")
    parser.add_argument("--calibration_file", default="",
                        help="--quantize int8: a labelled task-data file of the kind predict.py reads "
                             "(classification label_text | clue_json, NER cluener_json): the task's score of the "
                             "int8 file and of float32 are measured on it, printed and written on the task card")
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
    vocab: Path | None = None


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
        card, vocab, config, what = None, None, load_bert_config(args.bert_network), "encoder"
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
    vocab = vocab if card is not None else None
    return Plan(config, card, seq_length, what, model_source, vocab)


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


def largest_difference(got: list[np.ndarray], want: list[np.ndarray]) -> float:
    return max(float(np.abs(a - b).max()) for a, b in zip(got, want))


def write_onnx(plan: Plan, network: nn.Cell, args: argparse.Namespace, written: Path, scratch: Path,
               checks: list[tuple[list[np.ndarray], list[np.ndarray]]], scoring: Scoring | None = None
               ) -> tuple[float, dict | None]:
    """The task graph as ONNX at written, optimized and quantized as asked (scratch: the path prefix of the files
    on the way); its largest difference from the checkpoint's graph on checks (inputs, outputs), refused above
    TOLERANCE (int8: its difference from the float32 graph is printed; and with scoring, the task's score of both,
    returned for the card)."""
    weights = {parameter.name: parameter.asnumpy() for parameter in network.get_parameters()}
    batch, seq = (args.batch_size, plan.seq_length) if args.batch_size else (None, None)
    quantize = args.quantize == "int8"
    float_file = Path(f"{scratch}.plain.onnx") if args.optimize or quantize else written
    write_task_onnx(float_file, plan.card, plan.config, weights, batch, seq)
    if args.optimize:
        plain, float_file = float_file, Path(f"{scratch}.optimized.onnx") if quantize else written
        counts = optimize_onnx(plain, float_file, plan.config)
        print(f"onnxruntime's optimizer fused: {counts_text(counts)}"
              + ("; NEZHA's relative-position attention has no fused kernel and runs unfused"
                 if plan.config.use_relative_positions else ""), flush=True)
    backend = OnnxBackend(float_file)
    float_outputs = [backend(*inputs) for inputs, _ in checks]
    difference = max(largest_difference(got, want) for got, (_, want) in zip(float_outputs, checks))
    if not difference <= TOLERANCE:
        raise ValueError(f"the exported ONNX graph differs from the checkpoint's by {difference:.2e} (more than "
                         f"{TOLERANCE}): not written; report this with --debug output")
    if quantize:
        quantize_int8(float_file, written)
        quantized = OnnxBackend(written)
        int8_difference = max(largest_difference(quantized(*inputs), want)
                              for (inputs, _), want in zip(checks, float_outputs))
        print(f"int8: outputs differ from the float32 graph's by at most {int8_difference:.1e} on the check inputs "
              f"(float32: {difference:.1e} from the checkpoint's)", flush=True)
        if scoring is not None:
            return difference, scoring.compare(backend, quantized)
    return difference, None


@dataclass(frozen=True)
class Scoring:
    """The task's score of the int8 file against float32 on a labelled file, through predict.py's pipeline."""

    scored: ScoredInputs
    card: TaskCard
    tokenizer: FullTokenizer
    crf: tuple[np.ndarray, np.ndarray, np.ndarray] | None
    batch_size: int = 32

    def compare(self, float32: OnnxBackend, int8: OnnxBackend) -> dict:
        metric, float_score = task_score(self.scored, float32, self.tokenizer, self.card, self.batch_size, self.crf)
        _, int8_score = task_score(self.scored, int8, self.tokenizer, self.card, self.batch_size, self.crf)
        records = len(self.scored.inputs.items)
        print(f"int8: {metric} {int8_score:.4f}, float32 {float_score:.4f} (int8 - float32 = "
              f"{int8_score - float_score:+.4f}) on the {records} records of --calibration_file {self.scored.path}",
              flush=True)
        return {"metric": metric, "int8": int8_score, "float32": float_score, "difference": int8_score - float_score,
                "records": records, "calibration_file": str(self.scored.path)}


def plan_scoring(args: argparse.Namespace, plan: Plan, checkpoint: Path) -> Scoring | None:
    """For --quantize int8 of a classifier or tagger: the labelled records to score on, read and checked before
    any graph is built (one line if they are missing or bad); None, with a note, where no score is measured."""
    if args.quantize != "int8":
        return None
    card = plan.card
    unscored = ("an encoder" if card is None else "SQuAD (its answers need run_squad.py's evaluation)"
                if card.task not in SCORED_FORMATS else "a regression head" if card.num_class == 1
                and card.task == "classification" else "")
    if unscored:
        print(f"note: int8: the task's score is not measured for {unscored}; only the outputs' difference from "
              f"float32 is printed", flush=True)
        return None
    task = card.task
    if not args.calibration_file:
        raise ValueError(f"--quantize int8 measures the {task} model's score with the int8 file against float32, and "
                         f"the task card does not record the records the model was evaluated on: pass "
                         f"--calibration_file, a labelled {task} file of the kind predict.py reads "
                         f"({SCORED_FORMATS[task]})")
    if plan.vocab is None:
        raise ValueError(f"--quantize int8 scores text, and checkpoint {checkpoint} has no vocab beside it "
                         f"({run_card_of(checkpoint).vocab_file}): copy the vocab.txt the run was finetuned with there")
    scored = read_scored_inputs(args.calibration_file, task)
    if task == "classification":
        unknown = sorted(set(scored.gold) - set(card.labels))
        if unknown:
            raise ValueError(f"--calibration_file {args.calibration_file} has label {unknown[0]!r}, not one of the "
                             f"model's ({', '.join(card.labels)}): pass records of the model's task")
    crf = crf_weights(checkpoint) if task == "ner" and card.use_crf else None
    return Scoring(scored, card, FullTokenizer(plan.vocab, card.do_lower_case), crf)


def write_export_card(target: Path, card: TaskCard, quantization: dict, optimized: bool) -> Path:
    """The task card beside the exported file ({file}.task.json): the run's card and, under "int8", the scores
    of the int8 file and of float32 on the calibration records."""
    import json

    values = json.loads(card.to_json())
    values["int8"] = {"file": target.name, "optimized": optimized, **quantization}
    return write_text_atomically(Path(f"{target}.task.json"), json.dumps(values, indent=1, ensure_ascii=False) + "\n")


def export(args: argparse.Namespace) -> dict:
    if args.batch_size < 0:
        raise ValueError(f"--batch_size {args.batch_size}: pass a batch size of at least 1, or 0 for a dynamic "
                         f"batch size")
    if args.file_format != "ONNX" and (args.optimize or args.quantize != "none"):
        flag = "--optimize true" if args.optimize else f"--quantize {args.quantize}"
        raise ValueError(f"{flag} is for ONNX files (onnxruntime's optimizer and quantization): pass --file_format "
                         f"ONNX, or leave {flag.split()[0]} out for MindIR")
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
    scoring = plan_scoring(args, plan, checkpoint)
    seq_length, what = plan.seq_length, plan.what
    setup_device(args.device_target, args.device_id)
    network = build_graph(plan, checkpoint)
    vocab_size = plan.config.vocab_size
    shapes = [(args.batch_size or 2, seq_length)]
    if args.file_format == "ONNX" and not args.batch_size:  # dynamic axes: checked at a second shape too
        shapes.append((3, max(1, seq_length // 2)))
    checks = []
    for batch, length in shapes:
        inputs = sample_inputs(batch, length, vocab_size)
        checks.append((inputs, numpy_outputs(network(*(Tensor(a) for a in inputs)))))
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.stem}.{os.getpid()}.partial")
    written = Path(f"{partial}.{args.file_format.lower()}")
    quantization = None
    try:
        if args.file_format == "ONNX":
            difference, quantization = write_onnx(plan, network, args, written, partial, checks, scoring)
        else:
            spec = Tensor(shape=[args.batch_size or None, seq_length], dtype=ms.int32)
            ms.export(network, spec, spec, spec, file_name=str(partial), file_format=args.file_format)
            inputs, expected = checks[0]
            difference = largest_difference(MindIRBackend(written)(*inputs), expected)
            if not difference <= TOLERANCE:
                raise ValueError(f"the exported {args.file_format} graph differs from the checkpoint's by "
                                 f"{difference:.2e} (more than {TOLERANCE}): not written; report this with --debug "
                                 f"output")
        os.replace(written, target)
        if quantization is not None:
            card_file = write_export_card(target, plan.card, quantization, args.optimize)
            print(f"wrote {card_file}: the task card with the int8 and float32 scores", flush=True)
        else:  # a card of an earlier int8 export of this name would describe another file
            Path(f"{target}.task.json").unlink(missing_ok=True)
    finally:
        for path in (written, *partial.parent.glob(f"{partial.name}.*.onnx")):
            path.unlink(missing_ok=True)
    batch = args.batch_size or "dynamic"
    length = seq_length if args.batch_size or args.file_format != "ONNX" else "dynamic"
    kind = " ".join(([] if args.quantize == "none" else [args.quantize]) + (["optimized"] if args.optimize else []))
    print(f"wrote {target}: the {kind + ' ' if kind else ''}{what} graph of {checkpoint.name}, inputs [{batch}, "
          f"{length}]; loaded back, its outputs differ from the checkpoint's by at most {difference:.1e}"
          + (" (float32, before quantization)" if args.quantize != "none" else ""), flush=True)
    return {"file": str(target), "max_difference": difference, "task": what,
            **({"int8": quantization} if quantization is not None else {})}


def main(argv: list[str] | None = None) -> dict:
    return run_cli("export.py", lambda arguments: export(parse_args(arguments)), argv)


if __name__ == "__main__":
    main()
