"""Pretraining step of this project's cell against HuggingFace BertForPreTraining in PyTorch eager.

    python bench/pretrain_step_vs_torch.py [--layers 4 --hidden 256 --seq 128 --batch 16 --rounds 5 --steps 10]
    python bench/pretrain_step_vs_torch.py --memory      # peak memory instead of speed

Speed: both sides in one process, alternating rounds so machine noise hits both alike; prints steps/s of each and
their ratio. Memory: each side in a child process of this script (two frameworks in one process cannot be told
apart); prints each side's peak resident memory, its growth over the framework's import, and their ratio.

Needs requirements-dev.txt (torch, transformers). Both sides: same shapes, MLM on 20 gathered positions, fp32,
global-norm clipping; ours with Lamb and the dynamic loss scale on, torch with AdamW.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("USE_TF", "0")  # transformers on PyTorch only (TF's protos clash with tfrecord's)

COLUMNS = ("input_ids", "input_mask", "segment_ids", "next_sentence_labels", "masked_lm_positions", "masked_lm_ids",
           "masked_lm_weights")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("layers", 4), ("hidden", 256), ("seq", 128), ("batch", 16), ("rounds", 5), ("steps", 10),
                          ("vocab", 8000), ("predictions", 20)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--memory", action="store_true", help="measure peak memory instead of speed")
    parser.add_argument("--side", choices=("ours", "torch"), help=argparse.SUPPRESS)  # a --memory child
    return parser.parse_args()


def model_shape(args: argparse.Namespace) -> dict:
    return dict(vocab_size=args.vocab, hidden_size=args.hidden, num_hidden_layers=args.layers,
                num_attention_heads=args.hidden // 64, intermediate_size=4 * args.hidden,
                hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)


def make_batch(args: argparse.Namespace) -> dict[str, np.ndarray]:
    rng = np.random.RandomState(0)
    b, s, p = args.batch, args.seq, args.predictions
    return dict(input_ids=rng.randint(5, args.vocab, (b, s)), input_mask=np.ones((b, s)), segment_ids=np.zeros((b, s)),
                next_sentence_labels=rng.randint(0, 2, (b, 1)),
                masked_lm_positions=np.stack([rng.choice(s, p, replace=False) for _ in range(b)]),
                masked_lm_ids=rng.randint(5, args.vocab, (b, p)), masked_lm_weights=np.ones((b, p)))


def import_ours() -> None:
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")


def ours_step(args: argparse.Namespace, batch: dict[str, np.ndarray]) -> Callable[[], None]:
    """One call of this project's train-one-step cell (graph mode, Lamb, dynamic loss scale, clip 1.0)."""
    import mindspore as ms

    from src.bert_for_pre_training import BertNetworkWithLoss
    from src.config import BertConfig, LossScaleSettings, OptimizerSettings
    from src.optim import create_optimizer
    from src.train_step import TrainOneStepCell
    network = BertNetworkWithLoss(BertConfig(seq_length=args.seq, **model_shape(args)))
    optimizer = create_optimizer("Lamb", OptimizerSettings(learning_rate=1e-4, warmup_steps=0),
                                 network.trainable_params(), decay_steps=10000)
    cell = TrainOneStepCell(network, optimizer, LossScaleSettings(65536.0, 2, 1000), 1.0)
    cell.set_train()
    inputs = [ms.Tensor(batch[k].astype(np.float32 if k == "masked_lm_weights" else np.int32)) for k in COLUMNS]
    return lambda: cell(*inputs)[0].asnumpy()


def import_torch() -> None:
    import torch  # noqa: F401
    import transformers  # noqa: F401


def torch_step(args: argparse.Namespace, batch: dict[str, np.ndarray]) -> Callable[[], None]:
    """HF BertForPreTraining with the same MLM gathering and loss, AdamW, clip 1.0, in eager mode."""
    import torch
    from transformers import BertConfig as HFConfig, BertForPreTraining as HFPreTraining
    model = HFPreTraining(HFConfig(max_position_embeddings=512, **model_shape(args))).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t = {k: torch.tensor(v, dtype=torch.float32 if k == "masked_lm_weights" else torch.long) for k, v in batch.items()}
    rows = torch.arange(args.batch)[:, None]

    def step() -> None:
        sequence_output, pooled = model.bert(t["input_ids"], t["input_mask"], t["segment_ids"], return_dict=False)[:2]
        mlm, nsp = model.cls(sequence_output[rows, t["masked_lm_positions"]], pooled)
        nll = torch.nn.functional.cross_entropy(mlm.reshape(-1, args.vocab), t["masked_lm_ids"].reshape(-1),
                                                reduction="none")
        loss = (nll * t["masked_lm_weights"].reshape(-1)).sum() / (t["masked_lm_weights"].sum() + 1e-5) \
            + torch.nn.functional.cross_entropy(nsp, t["next_sentence_labels"].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


SIDES = {"ours": (import_ours, ours_step), "torch": (import_torch, torch_step)}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def measure_memory_child(args: argparse.Namespace) -> None:
    """Runs in a child: one side's imports, then its steps; prints peak memory after each as JSON."""
    import_side, build = SIDES[args.side]
    import_side()
    after_import = peak_rss_mib()
    step = build(args, make_batch(args))
    for _ in range(3 + args.steps):
        step()
    print(json.dumps({"after_import": after_import, "peak": peak_rss_mib()}))


def measure_memory(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    flags = [f"--{k}={v}" for k, v in vars(args).items() if isinstance(v, int) and not isinstance(v, bool)]
    return {side: json.loads(subprocess.run([sys.executable, __file__, "--side", side, *flags], check=True,
                                            capture_output=True, text=True).stdout.strip().splitlines()[-1])
            for side in SIDES}


def measure_speed(args: argparse.Namespace) -> dict[str, float]:
    batch = make_batch(args)
    steps = {}
    for name, (import_side, build) in SIDES.items():
        import_side()
        steps[name] = build(args, batch)
    for step in steps.values():  # compile / warm up
        for _ in range(3):
            step()
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                step()
            rates[name].append(args.steps / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def main() -> None:
    args = parse_args()
    if args.side:
        measure_memory_child(args)
        return
    print(f"shape {args.layers}x{args.hidden}, seq {args.seq}, batch {args.batch}, {args.predictions} predictions, "
          f"fp32, CPU")
    labels = {"ours": "ours (MindSpore graph, Lamb, loss scale)", "torch": "torch eager (HF BertForPreTraining, AdamW)"}
    if args.memory:
        memory = measure_memory(args)
        for name, label in labels.items():
            m = memory[name]
            print(f"{label}: peak {m['peak']:.0f} MiB, {m['peak'] - m['after_import']:.0f} MiB over its import")
        growth = {name: m["peak"] - m["after_import"] for name, m in memory.items()}
        print(f"ratio ours / torch: peak {memory['ours']['peak'] / memory['torch']['peak']:.2f}, "
              f"over import {growth['ours'] / growth['torch']:.2f}")
        return
    rates = measure_speed(args)
    for name, label in labels.items():
        print(f"{label}: {rates[name]:.2f} steps/s")
    print(f"ratio ours / torch: {rates['ours'] / rates['torch']:.2f}")


if __name__ == "__main__":
    main()
