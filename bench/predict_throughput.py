"""Inference on raw text: predict.py's classification (or, with --task ner, tagging) pipeline on each backend against
every CPU peer, on the same weights and the same texts, batch 32 throughput and batch 1 latency, with each side's
labels (entities) checked against the float32 checkpoint's.

    python bench/predict_throughput.py --preset tiny --json tiny.json
    python bench/predict_throughput.py --preset base --json base.json
    python bench/predict_throughput.py [--layers 12 --hidden 768 --seq 128 --batch 32 --texts 256 --rounds 3]
    python bench/predict_throughput.py --task ner --preset base --json ner_base.json     # a softmax tagger
    python bench/predict_throughput.py --preset nezha-base --json nezha_base.json        # NEZHA, HF's Nezha peers
    python bench/predict_throughput.py --task ner --checkpoint_dir RUN_DIR               # a finetuned tagger

One process. A classifier of the preset's shape (or --layers x --hidden) with random weights (seeded) is written as
a finetuned checkpoint directory (checkpoint, task card, vocab trained on the texts below), its classifier bias set
so that half the texts get each label (random weights would give nearly all texts one label, and an agreement of
100% would say nothing); a tagger (--task ner) of People's Daily's BIO tags gets each tag's median score centred.
HuggingFace's Bert (Nezha) For{Sequence,Token}Classification gets the same weights by src/model/conversion.py's
ms_to_hf / hf_json_from_config (the project's names are HF's). Tagging: see tagging_texts and
tagging_pipeline_side for how each side gets one token a character.

The texts: real reviews (data/sentiment_zh_2400.txt) and People's Daily text (data/peoples_daily_199801_
head2500.txt, POS tags removed; every fourth line a whole paragraph, the others split at sentence ends), half
each, shuffled (seed 0): 5 to several hundred characters, the longest truncated to --seq as in training. The sides:

- predict.py's pipeline (src/serve/pipelines.classify on src/serve/backends.open_backend, as predict.py calls them;
  in this process, the model loaded before the timing): mindspore (the checkpoint; bucket lengths), mindir
  (export.py --batch_size 0: dynamic batch, max_seq_length), onnx (export.py --file_format ONNX --batch_size 0:
  dynamic axes), onnx optimized (--optimize true), onnx int8 (--optimize true --quantize int8);
- HF's text-classification pipeline on PyTorch eager, padded to --seq and to each batch's longest (its default);
  the same with torch.ao.quantization.quantize_dynamic int8 Linear layers;
- onnxruntime on HF's own export of the same model (torch.onnx.export, TorchScript exporter, dynamic batch and
  sequence axes; attention in HF's eager implementation, the pattern onnxruntime's fusions match): plain,
  optimized (onnxruntime.transformers.optimizer, model_type bert) and int8 (onnxruntime.quantization.
  quantize_dynamic of the optimized graph), each with HF's fast tokenizer padding each batch to its longest;
- optimum: not written; a note says whether it imports (it is not in requirements-dev.txt).

predict.py sorts its inputs by length into batches (output order kept); the peers run the texts in input order, as
HF's pipeline does, each batch padded to its longest: part of predict.py's ratio at batch 32 is that sorting.

Each side runs a warm-up round (not counted: MindSpore compiles its bucket shapes there) and then --rounds rounds,
the sides alternating (the order rotated each round) so machine noise hits all alike. Batch 32: texts/s over
--texts texts (median of rounds), tokenization included. Batch 1: each of the first --latency_texts texts alone,
p50 and p95 ms over all rounds' calls. Model load and export are not timed with them but reported: the export,
the load (setup), the first batch of 32 and the whole warm-up round. Each side's labels are compared with the
float32 checkpoint's (predict.py mindspore at batch 32) and the largest difference of P(pos) is printed. Ratios:
against HF's pipeline on PyTorch eager with its default padding, and against onnxruntime on HF's optimized
export. --json writes every figure with the host (/proc/cpuinfo model name, cores) and the commit.

Needs requirements-dev.txt (torch, transformers, onnxruntime).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("USE_TF", "0")  # transformers on PyTorch only (TF's protos clash with tfrecord's)

HF_EAGER = "HF pipeline, eager, padded to batch"
HEADS = {"classification": "classifier", "ner": "ner"}  # the task -> the run card's (and checkpoint's) prefix
PEOPLES_DAILY_TAGS = ("O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER")
ORT_HF_OPTIMIZED = "onnxruntime on HF export, optimized"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="classification", choices=sorted(HEADS),
                        help="classification (reviews sentiment head) or ner (a softmax tagger of People's Daily's "
                             "BIO tags: each side's entities compared with the float32 checkpoint's)")
    parser.add_argument("--preset", default="",
                        help="model preset (tiny, base, ...): its layers, hidden size, heads and intermediate size; "
                             "default: --layers x --hidden")
    for name, default in (("layers", 12), ("hidden", 768), ("seq", 128), ("batch", 32), ("texts", 256),
                          ("rounds", 3), ("vocab", 8000)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--latency_texts", type=int, default=64, help="texts run one at a time (batch 1) a round")
    parser.add_argument("--calibration_records", type=int, default=64,
                        help="held-out reviews export.py --quantize int8 scores int8 against float32 on")
    parser.add_argument("--skip", default="", help="comma-separated parts of side names to leave out")
    parser.add_argument("--json", default="", help="write every figure here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--checkpoint_dir", default="",
                        help="a finetuned BERT classifier's directory (run_classifier.py's: checkpoint, task card, "
                             "vocab, model YAML) to measure instead of random weights; its labels' agreement is what "
                             "int8 costs a trained model (random weights put every text near the boundary); "
                             "--preset, --layers, --hidden, --vocab and --seq are then the run's")
    return parser.parse_args()


# ------------------------------------------------------------------------------------------------ texts


def reviews(count: int, skip: int = 0) -> list[str]:
    lines = (ROOT / "data" / "sentiment_zh_2400.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines[skip:skip + count]]


def peoples_daily_sentences() -> list[str]:
    """The People's Daily sample, POS tags and the corpus' [compound]tag brackets removed: every fourth line whole
    (a paragraph, often longer than --seq), the others split at sentence ends; 5 characters or more."""
    sentences = []
    lines = (ROOT / "data" / "peoples_daily_199801_head2500.txt").read_text(encoding="utf-8").splitlines()
    for index, line in enumerate(lines):
        text = "".join(token.rsplit("/", 1)[0].lstrip("[") for token in line.split())
        parts = [text] if index % 4 == 0 else re.findall(r"[^。！？]*[。！？]?", text)
        sentences += [part for part in parts if len(part) >= 5]
    return sentences


def bench_texts(count: int, seed: int) -> list[str]:
    """count texts: reviews and People's Daily sentences, half each, shuffled."""
    texts = reviews(count - count // 2) + peoples_daily_sentences()[:count // 2]
    random.Random(seed).shuffle(texts)
    return texts


def tagging_texts(texts: list[str], seq: int) -> list[str]:
    """The texts as every side tags them alike: white space and the characters the tokenizer drops removed (each
    side then has one token a character: HF's tokenizer reads the characters space-separated), cut to seq - 2
    characters (HF's pipeline truncates where predict.py windows)."""
    from src.data.tokenization import is_dropped

    cut = ["".join(c for c in text if not c.isspace() and not is_dropped(c))[:seq - 2] for text in texts]
    return [text for text in cut if text]


def peoples_daily_calibration(path: Path, count: int) -> Path:
    """The last count lines of the People's Daily sample as cluener_json with their gold entities (export.py
    --quantize int8 scores int8 against float32 on them)."""
    from src.serve.pipelines import cluener_label
    from src.tasks.metrics import entity_spans
    from src.tasks.task_files import peoples_daily_bio

    lines = (ROOT / "data" / "peoples_daily_199801_head2500.txt").read_text(encoding="utf-8").splitlines()
    rows = []
    for line in [line for line in lines if line.strip()][-count:]:
        characters, tags = peoples_daily_bio(line)
        text = "".join(characters)
        entities = [{"type": entity_type, "start": first, "end": last + 1, "text": text[first:last + 1]}
                    for entity_type, first, last in sorted(entity_spans(tags), key=lambda span: span[1])]
        rows.append(json.dumps({"text": text, "label": cluener_label(entities)}, ensure_ascii=False))
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


# ------------------------------------------------------------------------------------------------ weights


def model_config(args: argparse.Namespace, vocab_size: int):
    from src.config import load_bert_config

    if args.preset:
        preset = load_bert_config(args.preset)
        shape = dict(num_hidden_layers=preset.num_hidden_layers, hidden_size=preset.hidden_size,
                     num_attention_heads=preset.num_attention_heads, intermediate_size=preset.intermediate_size)
        base = args.preset
    else:
        shape = dict(num_hidden_layers=args.layers, hidden_size=args.hidden,
                     num_attention_heads=max(args.hidden // 64, 1), intermediate_size=4 * args.hidden)
        base = "base"
    return load_bert_config(base, vocab_size=vocab_size, compute_type="float32", **shape)


def hf_model(checkpoints: Path, task: str, attention: str = "sdpa"):
    """transformers' BertFor{Sequence|Token}Classification (NezhaFor... for NEZHA's functional relative positions,
    the paper's) holding the checkpoint's weights (conversion.ms_to_hf)."""
    import torch
    import transformers
    from transformers import BertConfig, NezhaConfig

    from src.files.checkpoint import read_checkpoint
    from src.model.conversion import hf_json_from_config, ms_to_hf
    from src.tasks.task_card import RunCard

    card, _, config = RunCard(checkpoints, HEADS[task]).read()
    values = {k: v for k, v in hf_json_from_config(config).items() if k not in ("architectures", "model_type")}
    family = "Nezha" if config.use_relative_positions else "Bert"
    head = "TokenClassification" if task == "ner" else "SequenceClassification"
    config_class = NezhaConfig if config.use_relative_positions else BertConfig
    model_class = getattr(transformers, f"{family}For{head}")
    hf_config = config_class(**values, num_labels=len(card.labels), id2label=dict(enumerate(card.labels)),
                             label2id={label: i for i, label in enumerate(card.labels)},
                             attn_implementation="eager" if config.use_relative_positions else attention)  # no sdpa
    model = model_class(hf_config).eval()
    params = ms_to_hf(read_checkpoint(next(checkpoints.glob(f"{HEADS[task]}-*.ckpt"))), config)
    state = {name: torch.from_numpy(np.ascontiguousarray(value)) for name, value in params.items()
             if name in model.state_dict()}
    missing = {name for name in set(model.state_dict()) - set(state)
               if not name.endswith(("position_ids", "positions_encoding"))}  # buffers, not weights
    assert not missing, f"weights not carried over to HF: {sorted(missing)[:5]}"
    model.load_state_dict(state, strict=False)
    return model


def hf_tokenizer(checkpoints: Path, task: str):
    from transformers import BertTokenizerFast

    from src.tasks.task_card import RunCard

    card, vocab, _ = RunCard(checkpoints, HEADS[task]).read()
    return BertTokenizerFast(str(vocab), do_lower_case=card.do_lower_case)


def write_finetuned_directory(args: argparse.Namespace, directory: Path, texts: list[str]) -> Path:
    """A checkpoint directory as run_classifier.py / run_ner.py leave it: random weights (seeded), the head's bias
    moved so that the labels spread: the median text on the classifier's decision boundary (half the texts each
    label), each tag's median token score equal (every tag, and so entities, in the tagger's output)."""
    import mindspore as ms
    import torch

    from src.data.tokenization import train_vocab
    from src.files.checkpoint import read_checkpoint, write_checkpoint
    from src.model.task_heads import BertForSequenceClassification, BertForTokenClassification
    from src.tasks.task_card import RunCard, TaskCard

    ms.set_seed(args.seed)
    (directory / "text.txt").write_text("\n".join(reviews(2400) + peoples_daily_sentences()) + "\n", encoding="utf-8")
    vocab = train_vocab([directory / "text.txt"], directory, vocab_size=args.vocab)
    config = model_config(args, sum(1 for _ in open(vocab, encoding="utf-8")))
    ner = args.task == "ner"
    labels = PEOPLES_DAILY_TAGS if ner else ("neg", "pos")
    network = BertForTokenClassification(config, len(labels)) if ner else BertForSequenceClassification(config, 2)
    checkpoints = directory / "ckpt"
    checkpoint = checkpoints / f"{HEADS[args.task]}-1_1.ckpt"
    write_checkpoint(network, checkpoint)
    RunCard(checkpoints, HEADS[args.task]).write(TaskCard(args.task, args.seq, labels=labels, num_class=len(labels)),
                                                 vocab, config)
    model, tokenizer = hf_model(checkpoints, args.task), hf_tokenizer(checkpoints, args.task)
    scores = []  # classification: logit margins; ner: every real token's logits
    with torch.inference_mode():
        for begin in range(0, min(len(texts), 128), args.batch):
            encoded = tokenizer([hf_text(text, args.task) for text in texts[begin:begin + args.batch]],
                                padding=True, truncation=True, max_length=args.seq, return_tensors="pt")
            logits = model(**encoded).logits
            if ner:
                scores += logits[encoded["attention_mask"].bool()].tolist()
            else:
                scores += (logits[:, 1] - logits[:, 0]).tolist()
    params = read_checkpoint(checkpoint)
    if ner:
        shift = -np.median(np.array(scores), axis=0).astype(np.float32)
    else:
        shift = np.array([0.5, -0.5], np.float32) * statistics.median(scores)
    params["classifier.bias"] = params["classifier.bias"] + shift
    write_checkpoint(params, checkpoint)
    return checkpoints


def hf_text(text: str, task: str) -> str:
    """The text as HF's tokenizer gets it: a tagger's characters space-separated, one token each (tagging_texts)."""
    return " ".join(text) if task == "ner" else text


# ------------------------------------------------------------------------------------------------ sides


@dataclass
class Side:
    """batch(texts) gives (outputs, P(pos)) of a pipeline, single(text) one text's: outputs are labels (classification)
    or each text's entities as a frozenset of (type, start, end) (ner, no P(pos)); setup_s: its load (and export)."""

    name: str
    batch: Callable[[list[str]], tuple[list, list[float]]]
    single: Callable[[str], tuple[object, float]]
    setup_s: float
    export_s: float = 0.0
    notes: dict = field(default_factory=dict)


def entity_set(entities: list[dict]) -> frozenset:
    return frozenset((entity["type"], entity["start"], entity["end"]) for entity in entities)


def tagged(text: str, tags: list[str], probabilities: list[float]) -> frozenset:
    """The entities of a text's per-character tags, decoded as predict.py decodes its own (entities_of)."""
    from src.serve.pipelines import entities_of

    return entity_set(entities_of(text, [(i, i + 1) for i in range(len(text))], tags, probabilities))


def predict_side(name: str, backend, tokenizer, card, batch_size: int, setup_s: float, export_s: float = 0.0,
                 notes: dict | None = None) -> Side:
    from src.serve.pipelines import Counts, classify, tag_entities

    def run(texts: list[str], size: int) -> tuple[list, list[float]]:
        if card.task == "ner":
            rows = tag_entities(texts, backend, tokenizer, card, size, Counts(), None)
            return [entity_set(row["entities"]) for row in rows], []
        rows = list(classify([(text, None) for text in texts], backend, tokenizer, card, size, Counts()))
        return [row["label"] for row in rows], [row["probabilities"][card.labels[-1]] for row in rows]

    def single(text: str) -> tuple[object, float]:
        outputs, probabilities = run([text], 1)
        return outputs[0], (probabilities or [0.0])[0]

    return Side(name, lambda texts: run(texts, batch_size), single, setup_s, export_s, notes or {})


def pipeline_side(name: str, model, tokenizer, args: argparse.Namespace, setup_s: float, pad_to_seq: bool) -> Side:
    from transformers import pipeline

    if args.task == "ner":
        return tagging_pipeline_side(name, model, tokenizer, args, setup_s)
    pipe = pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1)
    kwargs = dict(truncation=True, max_length=args.seq, top_k=None,
                  **({"padding": "max_length"} if pad_to_seq else {}))

    def scores(result) -> tuple[str, float]:
        result = result[0] if result and isinstance(result[0], list) else result
        return max(result, key=lambda r: r["score"])["label"], next(r["score"] for r in result
                                                                   if r["label"] == args.labels[-1])

    def batch(texts: list[str]) -> tuple[list[str], list[float]]:
        rows = [scores(result) for result in pipe(texts, batch_size=args.batch, **kwargs)]
        return [label for label, _ in rows], [p for _, p in rows]

    return Side(name, batch, lambda text: scores(pipe(text, **kwargs)), setup_s)


def tagging_pipeline_side(name: str, model, tokenizer, args: argparse.Namespace, setup_s: float) -> Side:
    """HF's token-classification pipeline, every token's tag kept (ignore_labels=[]), on the space-separated
    characters (hf_text): its tokens' offsets map back to the characters."""
    from transformers import pipeline

    pipe = pipeline("token-classification", model=model, tokenizer=tokenizer, device=-1, ignore_labels=[])

    def entities(text: str, tokens: list[dict]) -> frozenset:
        tags, probabilities = ["O"] * len(text), [0.0] * len(text)
        for token in tokens:
            tags[token["start"] // 2], probabilities[token["start"] // 2] = token["entity"], token["score"]
        return tagged(text, tags, probabilities)

    def batch(texts: list[str]) -> tuple[list, list[float]]:
        results = pipe([hf_text(text, "ner") for text in texts], batch_size=args.batch)
        return [entities(text, tokens) for text, tokens in zip(texts, results)], []

    return Side(name, batch, lambda text: (entities(text, pipe(hf_text(text, "ner"))), 0.0), setup_s)


def onnxruntime_side(name: str, path: Path, tokenizer, args: argparse.Namespace, export_s: float,
                     notes: dict | None = None) -> Side:
    import onnxruntime

    from src.serve.pipelines import softmax

    began = time.perf_counter()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [value.name for value in session.get_inputs()]
    setup_s = time.perf_counter() - began

    def run(texts: list[str]) -> tuple[list, list[float]]:
        encoded = tokenizer([hf_text(text, args.task) for text in texts], padding=True, truncation=True,
                            max_length=args.seq, return_tensors="np")
        probabilities = softmax(session.run(None, {n: encoded[n].astype(np.int64) for n in names})[0])
        if args.task == "ner":  # [batch, tokens, tags]: the text's characters are tokens 1..len(text)
            return [tagged(text, [args.labels[i] for i in p[1:len(text) + 1].argmax(-1)],
                           p[1:len(text) + 1].max(-1).tolist()) for text, p in zip(texts, probabilities)], []
        return [args.labels[i] for i in probabilities.argmax(-1)], probabilities[:, -1].tolist()

    def batch(texts: list[str]) -> tuple[list, list[float]]:
        labels, probabilities = [], []
        for begin in range(0, len(texts), args.batch):
            got = run(texts[begin:begin + args.batch])
            labels += got[0]
            probabilities += got[1]
        return labels, probabilities

    def single(text: str) -> tuple[object, float]:
        outputs, probabilities = run([text])
        return outputs[0], (probabilities or [0.0])[0]

    return Side(name, batch, single, setup_s, export_s, notes or {})


def timed(function, *arguments) -> tuple[float, object]:
    began = time.perf_counter()
    result = function(*arguments)
    return time.perf_counter() - began, result


def export_ours(checkpoints: Path, scratch: Path, name: str, flags: list[str]) -> tuple[Path, float]:
    import export

    suffix = ".mindir" if "MINDIR" in flags else ".onnx"
    seconds, _ = timed(export.main, ["--ckpt_file", str(checkpoints), "--file_name", str(scratch / name),
                                     "--batch_size", "0", *flags])
    return scratch / f"{name}{suffix}", seconds


def export_hf(model, tokenizer, path: Path, args: argparse.Namespace) -> float:
    """HF's model through torch.onnx.export (the TorchScript exporter: the dynamo one needs onnxscript), dynamic
    batch and sequence axes, opset 17."""
    import torch

    began = time.perf_counter()
    model.config.return_dict = False
    encoded = tokenizer(["一个例子", "两个例子的句子"], padding=True, return_tensors="pt")
    names = ["input_ids", "attention_mask", "token_type_ids"]
    axes = {name: {0: "batch", 1: "sequence"} for name in names} | {
        "logits": {0: "batch", 1: "sequence"} if args.task == "ner" else {0: "batch"}}
    with torch.inference_mode():
        torch.onnx.export(model, tuple(encoded[n] for n in names), str(path), input_names=names,
                          output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False,
                          do_constant_folding=True)
    model.config.return_dict = True
    return time.perf_counter() - began


def hf_onnx_sides(checkpoints: Path, scratch: Path, tokenizer, config, args: argparse.Namespace) -> list[Side]:
    import onnx
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    from src.serve.onnx_graph import fused_op_counts

    plain, optimized, int8 = (scratch / f"hf.{kind}.onnx" for kind in ("plain", "optimized", "int8"))
    export_s = export_hf(hf_model(checkpoints, args.task, attention="eager"), tokenizer, plain, args)
    began = time.perf_counter()
    model = optimize_model(str(plain), model_type="bert", num_heads=config.num_attention_heads,
                           hidden_size=config.hidden_size)
    model.save_model_to_file(str(optimized))
    optimize_s = time.perf_counter() - began
    counts = {op: count for op, count in fused_op_counts(model.model).items() if count}
    # On HF's NEZHA export (no position embeddings) the fused EmbedLayerNormalization runs in float32, but its int8
    # form (QEmbedLayerNormalization) fails at run time ("input index out of range"): it stays float32 there.
    keep_float = [node.name for node in model.model.graph.node
                  if config.use_relative_positions and node.op_type == "EmbedLayerNormalization"]
    began = time.perf_counter()
    quantize_dynamic(str(optimized), str(int8), weight_type=QuantType.QInt8, nodes_to_exclude=keep_float,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})  # fused ops: no shape inference
    quantize_s = time.perf_counter() - began
    print(f"onnxruntime's optimizer on HF's export fused: {counts or 'nothing'}; nodes "
          f"{len(onnx.load(str(plain)).graph.node)} -> {len(model.model.graph.node)}", flush=True)
    return [onnxruntime_side("onnxruntime on HF export, plain", plain, tokenizer, args, export_s),
            onnxruntime_side(ORT_HF_OPTIMIZED, optimized, tokenizer, args, export_s + optimize_s,
                             {"fused": counts}),
            onnxruntime_side("onnxruntime on HF export, int8", int8, tokenizer, args,
                             export_s + optimize_s + quantize_s, {"fused": counts, "kept_float32": keep_float})]


def build_sides(args: argparse.Namespace, checkpoints: Path, scratch: Path) -> list[Side]:
    import torch

    from src.data.tokenization import FullTokenizer
    from src.serve.backends import open_backend
    from src.serve.onnx_graph import fused_op_counts
    from src.tasks.task_card import RunCard
    from src.train.distributed import compute_type_for_device

    skip = [part.strip() for part in args.skip.split(",") if part.strip()]

    def wanted(name: str) -> bool:
        return not any(part in name for part in skip)

    card, vocab, config = RunCard(checkpoints, HEADS[args.task]).read()
    config = compute_type_for_device(config)
    checkpoint = next(checkpoints.glob(f"{HEADS[args.task]}-*.ckpt"))
    tokenizer = FullTokenizer(vocab, card.do_lower_case)
    if args.task == "ner":
        calibration = peoples_daily_calibration(scratch / "calibration.json", args.calibration_records)
    else:
        calibration = scratch / "calibration.txt"
        lines = (ROOT / "data" / "sentiment_zh_2400.txt").read_text(encoding="utf-8").splitlines()
        calibration.write_text("\n".join(lines[-args.calibration_records:]) + "\n", encoding="utf-8")
    ours = (("predict.py mindspore", "", None),
            ("predict.py mindir", "mindir", ["--file_format", "MINDIR"]),
            ("predict.py onnx", "onnx", ["--file_format", "ONNX"]),
            ("predict.py onnx optimized", "onnx", ["--file_format", "ONNX", "--optimize", "true"]),
            ("predict.py onnx int8", "onnx", ["--file_format", "ONNX", "--optimize", "true", "--quantize", "int8",
                                              "--calibration_file", str(calibration)]))
    sides = []
    for index, (name, kind, flags) in enumerate(ours):
        if not wanted(name):
            continue
        model_file, export_s, notes = "", 0.0, {}
        if flags:
            path, export_s = export_ours(checkpoints, scratch, f"model{index}", flags)
            model_file = str(path)
            if "--optimize" in flags:
                import onnx
                notes["fused"] = {op: n for op, n in fused_op_counts(onnx.load(model_file)).items() if n}
            if "int8" in flags:
                card_file = Path(f"{model_file}.task.json")
                notes["export_int8_score"] = json.loads(card_file.read_text(encoding="utf-8")).get("int8")
        setup_s, backend = timed(open_backend, kind or "mindspore", card, config, checkpoint, model_file)
        sides.append(predict_side(name, backend, tokenizer, card, args.batch, setup_s, export_s, notes))

    hf_tok = hf_tokenizer(checkpoints, args.task)
    setup_s, model = timed(hf_model, checkpoints, args.task)
    for name, pad_to_seq in (("HF pipeline, eager, padded to seq", True), (HF_EAGER, False)):
        if wanted(name) and not (pad_to_seq and args.task == "ner"):  # the tagging pipeline pads to the batch
            sides.append(pipeline_side(name, model, hf_tok, args, setup_s, pad_to_seq))
    name = "HF pipeline, torch dynamic int8, padded to batch"
    if wanted(name):
        began = time.perf_counter()
        quantized = torch.ao.quantization.quantize_dynamic(hf_model(checkpoints, args.task), {torch.nn.Linear},
                                                           dtype=torch.qint8)
        sides.append(pipeline_side(name, quantized, hf_tok, args, time.perf_counter() - began, False))
    if wanted("onnxruntime on HF export"):
        sides += [side for side in hf_onnx_sides(checkpoints, scratch, hf_tok, config, args) if wanted(side.name)]
    try:
        import optimum  # noqa: F401
        print("note: optimum imports, but its side is not written yet: onnxruntime on torch.onnx.export stands "
              "for it", flush=True)
    except ImportError:
        print("note: optimum is not installed: no optimum side (onnxruntime on HF's torch.onnx.export is the "
              "same exporter and runtime)", flush=True)
    return sides


# ------------------------------------------------------------------------------------------------ measuring


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.array(values), q))


def host() -> dict:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"cpu": model or platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "cpus_available": available, "platform": platform.platform()}


def commit() -> dict:
    def git(*arguments: str) -> str:
        try:
            return subprocess.run(["git", *arguments], cwd=ROOT, capture_output=True, text=True,
                                  check=False).stdout.strip()
        except OSError:
            return ""
    return {"commit": git("rev-parse", "HEAD"), "dirty": bool(git("status", "--porcelain", "--untracked-files=no"))}


def agreement(outputs: list, reference: list) -> float:
    """Classification: the share of labels equal to the reference's; ner: the micro F1 of the entities against the
    reference's (an entity counts when its type, start and end match)."""
    if outputs and isinstance(outputs[0], frozenset):
        found = sum(len(got & want) for got, want in zip(outputs, reference))
        total = sum(map(len, outputs)) + sum(map(len, reference[:len(outputs)]))
        return 2 * found / total if total else 1.0
    return float(np.mean(np.array(outputs) == np.array(reference[:len(outputs)])))


def main() -> None:
    args = parse_args()
    args.labels = ("neg", "pos")
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    import onnxruntime
    import torch
    import transformers

    texts = bench_texts(args.texts, args.seed)
    if args.task == "ner" and not args.checkpoint_dir:
        texts = tagging_texts(texts, args.seq)
    results: dict = {"args": vars(args), "host": host(), **commit(),
                     "versions": {"mindspore": ms.__version__, "torch": torch.__version__,
                                  "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__},
                     "torch_threads": torch.get_num_threads()}
    began_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as scratch:
        from src.tasks.task_card import RunCard
        if args.checkpoint_dir:
            checkpoints = Path(args.checkpoint_dir)
            if not RunCard(checkpoints, HEADS[args.task]).card_file.is_file():
                raise SystemExit(f"--checkpoint_dir {checkpoints} has no {HEADS[args.task]}.task.json: pass the "
                                 f"directory of a run_{'ner' if args.task == 'ner' else 'classifier'}.py run "
                                 f"(--task {args.task})")
        else:
            checkpoints = write_finetuned_directory(args, Path(scratch), texts)
        card, _, config = RunCard(checkpoints, HEADS[args.task]).read()
        learned = config.use_relative_positions and config.relative_position_type == "learned"
        unsupported = ("learned relative positions (HF has no such model)" if learned else
                       "a CRF head (HF has none)" if card.use_crf else
                       "mean pooling (HF's classifier pools [CLS])" if card.classifier_pooling != "cls" else
                       "one class" if card.task == "classification" and card.num_class < 2 else
                       "word tokens (HF's side reads characters)" if card.token_unit != "character" else "")
        if unsupported:
            raise SystemExit(f"{checkpoints}: {unsupported}; measured here: a BERT or NEZHA (functional relative "
                             f"positions) classifier ([CLS] pooling, two or more classes) or softmax character tagger")
        args.labels, args.seq = card.labels, card.max_seq_length
        if args.task == "ner" and args.checkpoint_dir:
            texts = tagging_texts(texts, args.seq)
        single_texts = texts[:args.latency_texts]
        lengths = [len(text) for text in texts]
        results["texts"] = {"count": len(texts), "reviews": args.texts - args.texts // 2,
                            "peoples_daily": args.texts // 2, "latency_texts": len(single_texts),
                            "characters": {"min": min(lengths), "median": statistics.median(lengths),
                                           "max": max(lengths)}}
        sides = build_sides(args, checkpoints, Path(scratch))
        prepare_s = time.perf_counter() - began_all

        figures: dict[str, dict] = {side.name: {"setup_s": side.setup_s, "export_s": side.export_s, **side.notes,
                                                "batch_s": [], "single_ms": []} for side in sides}
        outputs: dict[str, dict] = {}
        for side in sides:  # warm-up, not counted: first batch, a whole round of each regime, the labels
            figure = figures[side.name]
            figure["first_batch_s"], _ = timed(side.batch, texts[:args.batch])
            figure["warmup_round_s"], (labels, probabilities) = timed(side.batch, texts)
            began = time.perf_counter()
            singles = [side.single(text) for text in single_texts]
            figure["warmup_single_round_s"] = time.perf_counter() - began
            outputs[side.name] = {"labels": labels, "p_pos": probabilities,
                                  "single_labels": [label for label, _ in singles],
                                  "single_p_pos": [p for _, p in singles]}
            print(f"warm-up {side.name}: first batch {figure['first_batch_s']:.2f} s, round "
                  f"{figure['warmup_round_s']:.2f} s, batch-1 round {figure['warmup_single_round_s']:.2f} s",
                  flush=True)
        for round_index in range(args.rounds):
            order = sides[round_index % len(sides):] + sides[:round_index % len(sides)]
            for side in order:
                seconds, _ = timed(side.batch, texts)
                figures[side.name]["batch_s"].append(seconds)
            for side in order:
                for text in single_texts:
                    seconds, _ = timed(side.single, text)
                    figures[side.name]["single_ms"].append(1000 * seconds)
            print(f"round {round_index + 1}/{args.rounds} done", flush=True)
    total_s = time.perf_counter() - began_all

    reference_name = next(iter(outputs))
    reference = outputs[reference_name]
    for name, figure in figures.items():
        got = outputs[name]
        figure["texts_per_s"] = len(texts) / statistics.median(figure["batch_s"])
        figure["p50_ms"], figure["p95_ms"] = percentile(figure["single_ms"], 50), percentile(figure["single_ms"], 95)
        figure["agreement"] = agreement(got["labels"], reference["labels"])
        figure["agreement_batch1"] = agreement(got["single_labels"], reference["labels"])
        if args.task == "ner":
            figure["entities_per_text"] = float(np.mean([len(entities) for entities in got["labels"]]))
            continue
        figure["p_std"] = float(np.std(got["p_pos"]))
        figure["max_p_difference"] = float(np.max(np.abs(np.array(got["p_pos"]) - np.array(reference["p_pos"]))))
        figure["positive_share"] = float(np.mean(np.array(got["labels"]) == args.labels[-1]))
    for anchor, key in ((HF_EAGER, "hf_eager"), (ORT_HF_OPTIMIZED, "ort_hf_optimized")):
        if anchor in figures:
            for figure in figures.values():
                figure[f"throughput_x_{key}"] = figure["texts_per_s"] / figures[anchor]["texts_per_s"]
                figure[f"p50_x_{key}"] = figure["p50_ms"] / figures[anchor]["p50_ms"]
                figure[f"p95_x_{key}"] = figure["p95_ms"] / figures[anchor]["p95_ms"]
    results.update(model={"layers": config.num_hidden_layers, "hidden": config.hidden_size,
                          "heads": config.num_attention_heads, "vocab": config.vocab_size, "seq": args.seq,
                          "preset": args.preset or None,
                          "relative_positions": config.relative_position_type if config.use_relative_positions
                          else None},
                   reference=reference_name, prepare_s=prepare_s, total_s=total_s, sides=figures)

    h = results["host"]
    dirty = " (dirty)" if results["dirty"] else ""
    print(f"\nhost: {h['cpu']}, {h['cpus_available']} of {h['cpus']} CPUs; torch threads {results['torch_threads']}; "
          f"MindSpore {ms.__version__}, torch {torch.__version__}, transformers {transformers.__version__}, "
          f"onnxruntime {onnxruntime.__version__}; commit {results['commit'][:7]}{dirty}")
    t = results["texts"]
    weights = f"weights of {args.checkpoint_dir}" if args.checkpoint_dir else f"random weights (seed {args.seed})"
    print(f"model: {args.preset or 'shape'} {config.num_hidden_layers} x {config.hidden_size}, vocab "
          f"{config.vocab_size}, {weights}, fp32; {t['count']} texts ({t['reviews']} reviews, "
          f"{t['peoples_daily']} People's Daily sentences, {t['characters']['min']}-{t['characters']['max']} "
          f"characters, median {t['characters']['median']}), seq {args.seq}; batch {args.batch}: median of "
          f"{args.rounds} rounds; batch 1: {len(single_texts)} texts x {args.rounds} rounds; labels against "
          f"{reference_name}; prepare {prepare_s:.0f} s, total {total_s:.0f} s")
    header = (f"{'side':50s} {'texts/s':>8s} {'xHF':>6s} {'xORT':>6s} {'p50 ms':>8s} {'p95 ms':>8s} {'xHF':>6s} "
              f"{'xORT':>6s} {'agree':>6s} {'agr b1':>6s} {'max dP':>7s} {'setup s':>7s} {'warm s':>7s}")
    print(header)
    for name, f in figures.items():
        def ratio(key: str, f: dict = f) -> str:
            return f"{f[key]:6.2f}" if key in f else f"{'':6s}"

        print(f"{name:50s} {f['texts_per_s']:8.1f} {ratio('throughput_x_hf_eager')} "
              f"{ratio('throughput_x_ort_hf_optimized')} {f['p50_ms']:8.1f} {f['p95_ms']:8.1f} "
              f"{ratio('p50_x_hf_eager')} {ratio('p50_x_ort_hf_optimized')} {f['agreement']:6.3f} "
              f"{f['agreement_batch1']:6.3f} {f.get('max_p_difference', float('nan')):7.1e} "
              f"{f['setup_s'] + f['export_s']:7.1f} {f['warmup_round_s']:7.1f}")
    agree = ("entity F1 against" if args.task == "ner" else "labels equal to")
    print(f"xHF: against {HF_EAGER}; xORT: against {ORT_HF_OPTIMIZED} (latency: lower is faster); agree: {agree} "
          f"{reference_name}'s at batch {args.batch}, agr b1: at batch 1; max dP: largest |P(pos) - reference's| "
          f"(classification); setup s: export and load; warm s: the uncounted warm-up round (MindSpore's compiles)")
    if args.task == "ner":
        print(f"entities per text: {figures[reference_name]['entities_per_text']:.2f} ({reference_name}); texts "
              f"without white space, at most {args.seq - 2} characters (tagging_texts)")
    else:
        print_label_spread(args, figures, reference_name)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
        print(f"wrote {args.json}")


def print_label_spread(args: argparse.Namespace, figures: dict, reference_name: str) -> None:
    positive = {name: round(f["positive_share"], 3) for name, f in figures.items()}
    spread = figures[reference_name]["p_std"]
    print(f"share of {args.labels[-1]} labels: {positive[reference_name]}, std of P({args.labels[-1]}) over the texts "
          f"{spread:.1e} ({reference_name}): int8's label agreement means little where the texts' spread is near its "
          f"max dP (random weights: pass --checkpoint_dir with a finetuned classifier)")


if __name__ == "__main__":
    main()
