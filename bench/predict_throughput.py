"""Batch inference on raw text: predict.py's classification pipeline on each backend against a HuggingFace
text-classification pipeline (PyTorch eager) on the same weights and the same reviews.

    python bench/predict_throughput.py [--layers 12 --hidden 768 --seq 128 --batch 32 --texts 256 --rounds 3]

One process: a random classifier of the given shape is written as a finetuned checkpoint directory (checkpoint,
task card, vocab trained on the shipped reviews), exported to MindIR (dynamic batch) and ONNX (fixed batch), and
loaded into transformers' BertForSequenceClassification by parameter name (the project's names are HF's). Each
side classifies the same texts (tokenizing included), rounds alternating so machine noise hits all alike; the
median texts/s of each and its ratio to HF are printed. HF runs twice: padded to --seq as predict.py pads (the same
work), and padded to the longest text of each batch (its default). The labels of all sides must agree.

Needs requirements-dev.txt (torch, transformers, onnxruntime).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("USE_TF", "0")  # transformers on PyTorch only (TF's protos clash with tfrecord's)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("layers", 12), ("hidden", 768), ("seq", 128), ("batch", 32), ("texts", 256),
                          ("rounds", 3), ("vocab", 8000)):
        parser.add_argument(f"--{name}", type=int, default=default)
    return parser.parse_args()


def reviews(count: int) -> list[str]:
    lines = (ROOT / "data" / "sentiment_zh_2400.txt").read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1] for line in lines[:count]]


def write_finetuned_directory(args: argparse.Namespace, directory: Path) -> Path:
    """A classifier checkpoint directory as run_classifier.py leaves it (weights random: speed does not care)."""
    import mindspore as ms

    from src.config import load_bert_config
    from src.data.tokenization import train_vocab
    from src.files.checkpoint import write_checkpoint
    from src.model.task_heads import BertForSequenceClassification
    from src.tasks.task_card import RunCard, TaskCard

    ms.set_seed(0)
    (directory / "text.txt").write_text("\n".join(reviews(2400)) + "\n", encoding="utf-8")
    vocab = train_vocab([directory / "text.txt"], directory, vocab_size=args.vocab)
    config = load_bert_config("base", vocab_size=sum(1 for _ in open(vocab, encoding="utf-8")),
                              num_hidden_layers=args.layers, hidden_size=args.hidden,
                              num_attention_heads=max(args.hidden // 64, 1), intermediate_size=4 * args.hidden,
                              compute_type="float32")
    network = BertForSequenceClassification(config, 2)
    checkpoints = directory / "ckpt"
    write_checkpoint(network, checkpoints / "classifier-1_1.ckpt")
    RunCard(checkpoints, "classifier").write(TaskCard("classification", args.seq, labels=("neg", "pos"),
                                                      num_class=2), vocab, config)
    return checkpoints


def hf_pipeline(checkpoints: Path):
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast, pipeline

    from src.files.checkpoint import read_checkpoint
    from src.tasks.task_card import RunCard

    card, vocab, config = RunCard(checkpoints, "classifier").read()
    hf_config = BertConfig(vocab_size=config.vocab_size, hidden_size=config.hidden_size,
                           num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
                           intermediate_size=config.intermediate_size,
                           max_position_embeddings=config.max_position_embeddings,
                           type_vocab_size=config.type_vocab_size, layer_norm_eps=config.layer_norm_eps,
                           num_labels=2, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1})
    model = BertForSequenceClassification(hf_config).eval()
    params = read_checkpoint(next(checkpoints.glob("classifier-*.ckpt")))
    state = {name: torch.from_numpy(value) for name, value in params.items() if name in model.state_dict()}
    missing = set(model.state_dict()) - set(state) - {"bert.embeddings.position_ids"}
    assert not missing, f"weights not carried over to HF: {sorted(missing)[:5]}"
    model.load_state_dict(state, strict=False)
    tokenizer = BertTokenizerFast(str(vocab), do_lower_case=card.do_lower_case)
    return pipeline("text-classification", model=model, tokenizer=tokenizer, device=-1)


def main() -> None:
    args = parse_args()
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    import torch

    import export
    from src.data.tokenization import FullTokenizer
    from src.serve.backends import open_backend
    from src.serve.pipelines import Counts, classify
    from src.tasks.task_card import RunCard

    texts = reviews(args.texts)
    with tempfile.TemporaryDirectory() as scratch:
        checkpoints = write_finetuned_directory(args, Path(scratch))
        export.main(["--ckpt_file", str(checkpoints), "--file_name", f"{scratch}/model", "--file_format", "MINDIR",
                     "--batch_size", "0"])
        export.main(["--ckpt_file", str(checkpoints), "--file_name", f"{scratch}/model", "--file_format", "ONNX",
                     "--batch_size", str(args.batch)])
        card, vocab, config = RunCard(checkpoints, "classifier").read()
        checkpoint = next(checkpoints.glob("classifier-*.ckpt"))
        sides = {}
        for backend, model_file in (("mindspore", ""), ("mindir", f"{scratch}/model.mindir"),
                                    ("onnx", f"{scratch}/model.onnx")):
            runner = open_backend(backend, card, config, checkpoint, model_file)
            tokenizer = FullTokenizer(vocab, card.do_lower_case)
            sides[f"predict.py {backend}"] = (lambda r=runner, t=tokenizer: [
                row["label"] for row in classify([(text, None) for text in texts], r, t, card, args.batch, Counts())])
        pipe = hf_pipeline(checkpoints)
        kwargs = dict(batch_size=args.batch, truncation=True, max_length=args.seq)
        sides["HF pipeline, padded to seq"] = lambda: [r["label"] for r in pipe(texts, padding="max_length", **kwargs)]
        sides["HF pipeline, padded to batch"] = lambda: [r["label"] for r in pipe(texts, **kwargs)]

        labels = {name: run() for name, run in sides.items()}  # warm-up (graph compilation) and agreement
        reference = labels["predict.py mindspore"]
        agreement = {name: float(np.mean(np.array(got) == np.array(reference))) for name, got in labels.items()}
        times: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(args.rounds):
            for name, run in sides.items():
                began = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - began)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; torch threads "
          f"{torch.get_num_threads()}; MindSpore {ms.__version__}, torch {torch.__version__}")
    print(f"model: {args.layers} x {args.hidden}, vocab {config.vocab_size}; {len(texts)} reviews, seq {args.seq}, "
          f"batch {args.batch}, fp32, median of {args.rounds} rounds")
    hf = len(texts) / statistics.median(times["HF pipeline, padded to seq"])
    for name, measured in times.items():
        rate = len(texts) / statistics.median(measured)
        print(f"  {name:30s} {rate:8.1f} texts/s   {rate / hf:5.2f}x HF (padded to seq)   "
              f"labels equal to predict.py mindspore: {agreement[name]:.3f}")


if __name__ == "__main__":
    main()
