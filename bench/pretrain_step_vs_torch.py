"""Pretraining step of this project's cell against HuggingFace BertForPreTraining in PyTorch, eager and compiled.

    python bench/pretrain_step_vs_torch.py [--layers 4 --hidden 256 --seq 128 --batch 16 --rounds 5 --steps 10]
    python bench/pretrain_step_vs_torch.py --memory      # peak memory instead of speed

Speed: both sides in one process, alternating rounds so machine noise hits both alike; prints steps/s of each and
their ratio. Memory: each side in a child process of this script (two frameworks in one process cannot be told
apart); prints each side's peak resident memory, its growth over the framework's import, and their ratio.

Needs requirements-dev.txt (torch, transformers). All sides: same shapes, MLM on 20 gathered positions, fp32,
clipping; ours with the dynamic loss scale on and Lamb (--optimizer AdamWeightDecay to match the others), torch
with AdamW (torch has no Lamb). The
torch.compile side compiles the forward and loss (inductor, which needs a C++ compiler); it is skipped, with the
reason printed, where compiling fails. --skip names sides to leave out (e.g. --skip torch.compile).

The MindSpore model zoo's BERT (its BertNetworkWithLoss and BertTrainOneStepCell, as its run_pretrain.py builds them on
CPU: enable_lossscale false, since its loss-scale cell reads the NPU float status, which the CPU lacks; optimizer
AdamWeightDecay, the zoo's other choice, since MindSpore's fused Lamb op has no CPU kernel; it clips each gradient by
its own norm, not the global norm) runs with --zoo_dir, the official/nlp/Bert directory of a mindspore-ai/models
checkout outside this repository (never vendored: its `src` package would clash with ours, so it runs in a child process
that this script drives round by round). Without --zoo_dir that side is skipped, and the script says so.
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

os.environ.setdefault("USE_TF", "0")  # transformers on PyTorch only (TF's protos clash with tfrecord's)

COLUMNS = ("input_ids", "input_mask", "segment_ids", "next_sentence_labels", "masked_lm_positions", "masked_lm_ids",
           "masked_lm_weights")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("layers", 4), ("hidden", 256), ("seq", 128), ("batch", 16), ("rounds", 5), ("steps", 10),
                          ("vocab", 8000), ("predictions", 20)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--memory", action="store_true", help="measure peak memory instead of speed")
    parser.add_argument("--skip", default="", help="comma-separated sides to leave out")
    parser.add_argument("--optimizer", choices=("Lamb", "AdamWeightDecay"), default="Lamb",
                        help="ours: Lamb (what a user runs) or AdamWeightDecay (what torch and the zoo run on CPU)")
    parser.add_argument("--zoo_dir", default="", help="mindspore-ai/models official/nlp/Bert directory (optional)")
    parser.add_argument("--side", choices=("ours", "torch", "torch.compile", "zoo"), help=argparse.SUPPRESS)  # child
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)  # child: a round per stdin line
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

    from src.config import BertConfig, LossScaleSettings, OptimizerSettings
    from src.model.pretraining import BertNetworkWithLoss
    from src.train.optim import create_optimizer
    from src.train.train_step import TrainOneStepCell
    network = BertNetworkWithLoss(BertConfig(seq_length=args.seq, **model_shape(args)))
    optimizer = create_optimizer(args.optimizer, OptimizerSettings(learning_rate=1e-4, warmup_steps=0),
                                 network.trainable_params(), decay_steps=10000)
    cell = TrainOneStepCell(network, optimizer, LossScaleSettings(65536.0, 2, 1000), 1.0)
    cell.set_train()
    inputs = [ms.Tensor(batch[k].astype(np.float32 if k == "masked_lm_weights" else np.int32)) for k in COLUMNS]
    return lambda: cell(*inputs)[0].asnumpy()


def import_torch() -> None:
    import torch  # noqa: F401
    import transformers  # noqa: F401


def torch_step(args: argparse.Namespace, batch: dict[str, np.ndarray], compiled: bool = False) -> Callable[[], None]:
    """HF BertForPreTraining with the same MLM gathering and loss, AdamW, clip 1.0; eager, or the forward and loss
    through torch.compile."""
    import torch
    from transformers import BertConfig as HFConfig
    from transformers import BertForPreTraining as HFPreTraining
    model = HFPreTraining(HFConfig(max_position_embeddings=512, **model_shape(args))).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t = {k: torch.tensor(v, dtype=torch.float32 if k == "masked_lm_weights" else torch.long) for k, v in batch.items()}
    rows = torch.arange(args.batch)[:, None]

    def forward_loss() -> torch.Tensor:
        sequence_output, pooled = model.bert(t["input_ids"], t["input_mask"], t["segment_ids"], return_dict=False)[:2]
        mlm, nsp = model.cls(sequence_output[rows, t["masked_lm_positions"]], pooled)
        nll = torch.nn.functional.cross_entropy(mlm.reshape(-1, args.vocab), t["masked_lm_ids"].reshape(-1),
                                                reduction="none")
        return (nll * t["masked_lm_weights"].reshape(-1)).sum() / (t["masked_lm_weights"].sum() + 1e-5) \
            + torch.nn.functional.cross_entropy(nsp, t["next_sentence_labels"].reshape(-1))

    loss_of = torch.compile(forward_loss) if compiled else forward_loss

    def step() -> None:
        loss = loss_of()
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return step


def zoo_step(args: argparse.Namespace, batch: dict[str, np.ndarray]) -> Callable[[], None]:
    """The model zoo's pretraining network and train cell as its run_pretrain.py wires them on CPU (AdamWeightDecay
    with a polynomial-decay rate, no loss scale). Runs only in a child process: its package is also `src`."""
    sys.path.insert(0, str(Path(args.zoo_dir).resolve()))
    for name in [module for module in sys.modules if module == "src" or module.startswith("src.")]:
        del sys.modules[name]
    import mindspore as ms
    from mindspore import nn

    from src.config import BertConfig
    from src.model.pretraining import BertNetworkWithLoss, BertTrainOneStepCell
    shape = model_shape(args)
    network = BertNetworkWithLoss(BertConfig(seq_length=args.seq, type_vocab_size=2, **shape), True)
    learning_rate = nn.PolynomialDecayLR(1e-4, 0.0, 10000, 1.0)
    optimizer = nn.AdamWeightDecay(network.trainable_params(), learning_rate, eps=1e-6, weight_decay=0.01)
    cell = BertTrainOneStepCell(network, optimizer)
    cell.set_train()
    inputs = [ms.Tensor(batch[k].astype(np.float32 if k == "masked_lm_weights" else np.int32)) for k in COLUMNS]
    return lambda: cell(*inputs)[0].asnumpy()


SIDES = {"ours": (import_ours, ours_step), "torch": (import_torch, torch_step),
         "torch.compile": (import_torch, lambda args, batch: torch_step(args, batch, compiled=True)),
         "zoo": (import_ours, zoo_step)}
LABELS = {"ours": "ours (MindSpore graph, loss scale)", "torch": "torch eager (HF BertForPreTraining, AdamW)",
          "torch.compile": "torch.compile (inductor, same model, AdamW)",
          "zoo": "model zoo BERT (MindSpore graph, AdamWeightDecay, no loss scale)"}
CHILD_SIDES = {"zoo"}  # sides that run in a child process of their own


def chosen_sides(args: argparse.Namespace) -> list[str]:
    skipped = {name.strip() for name in args.skip.split(",") if name.strip()}
    zoo_code = Path(args.zoo_dir) / "src" / "bert_for_pre_training.py"
    if "zoo" not in skipped and not (args.zoo_dir and zoo_code.is_file()):
        print(f"zoo side skipped: pass --zoo_dir, the official/nlp/Bert directory of a mindspore-ai/models checkout"
              f"{f' ({args.zoo_dir} has no src/model/pretraining.py)' if args.zoo_dir else ''}")
        skipped.add("zoo")
    return [name for name in SIDES if name not in skipped]


def serve(args: argparse.Namespace) -> None:
    """Child: build one side, warm it up, say "ready"; then for each stdin line run a round and print steps/s."""
    import_side, build = SIDES[args.side]
    import_side()
    step = build(args, make_batch(args))
    for _ in range(3):
        step()
    print("ready", flush=True)
    for _ in sys.stdin:
        start = time.perf_counter()
        for _ in range(args.steps):
            step()
        print(args.steps / (time.perf_counter() - start), flush=True)


def child_flags(args: argparse.Namespace) -> list[str]:
    flags = [f"--{k}={v}" for k, v in vars(args).items() if isinstance(v, int) and not isinstance(v, bool)]
    return flags + [f"--optimizer={args.optimizer}"] + ([f"--zoo_dir={args.zoo_dir}"] if args.zoo_dir else [])


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
    found = {}
    for side in chosen_sides(args):
        result = subprocess.run([sys.executable, __file__, "--side", side, *child_flags(args)], capture_output=True,
                                text=True)
        if result.returncode == 0:
            found[side] = json.loads(result.stdout.strip().splitlines()[-1])
        else:
            print(f"{side} skipped: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    return found


def measure_speed(args: argparse.Namespace) -> dict[str, float]:
    batch = make_batch(args)
    steps = {}
    for name in chosen_sides(args):
        if name in CHILD_SIDES:
            steps[name] = served_side(args, name)
            continue
        import_side, build = SIDES[name]
        import_side()
        try:
            steps[name] = build(args, batch)
            for _ in range(3):  # compile / warm up
                steps[name]()
        except Exception as error:
            if name != "torch.compile":  # compiling can fail on a machine (no C++ compiler); the others must not
                raise
            steps.pop(name, None)
            print(f"{name} skipped: {type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}")
    rates: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(args.rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            for _ in range(1 if name in CHILD_SIDES else args.steps):  # a child side runs a whole round a call
                step()
            rates[name].append(args.steps / (time.perf_counter() - start))
    return {name: statistics.median(values) for name, values in rates.items()}


def served_side(args: argparse.Namespace, name: str) -> Callable[[], None]:
    """A side in a child process (started and warmed up now); calling the result runs args.steps steps there."""
    child = subprocess.Popen([sys.executable, __file__, "--side", name, "--serve", *child_flags(args)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    if child.stdout.readline().strip() != "ready":
        raise SystemExit(f"the {name} side failed to start (its error is above)")

    def run_round() -> None:
        child.stdin.write("go\n")
        child.stdin.flush()
        child.stdout.readline()
    return run_round


def main() -> None:
    args = parse_args()
    if args.side and args.serve:
        serve(args)
        return
    if args.side:
        measure_memory_child(args)
        return
    print(f"shape {args.layers}x{args.hidden}, seq {args.seq}, batch {args.batch}, {args.predictions} predictions, "
          f"fp32, CPU; ours with {args.optimizer}")
    if args.memory:
        memory = measure_memory(args)
        for name, m in memory.items():
            print(f"{LABELS[name]}: peak {m['peak']:.0f} MiB, {m['peak'] - m['after_import']:.0f} MiB over its import")
        if "ours" in memory:
            for name in (n for n in memory if n != "ours"):
                growth = {side: memory[side]["peak"] - memory[side]["after_import"] for side in ("ours", name)}
                print(f"ratio ours / {name}: peak {memory['ours']['peak'] / memory[name]['peak']:.2f}, "
                      f"over import {growth['ours'] / growth[name]:.2f}")
        return
    rates = measure_speed(args)
    for name, rate in rates.items():
        print(f"{LABELS[name]}: {rate:.2f} steps/s")
    if "ours" in rates:
        for name in (n for n in rates if n != "ours"):
            print(f"ratio ours / {name}: {rates['ours'] / rates[name]:.2f}")


if __name__ == "__main__":
    main()
