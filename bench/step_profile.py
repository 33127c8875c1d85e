"""Where one pretraining step's time goes, this project's cell against HuggingFace BertForPreTraining in PyTorch.

    python bench/step_profile.py [--layers 4 --hidden 256 --seq 128 --batch 16 --steps 3 --optimizer Lamb]

Both sides are the ones bench/pretrain_step_vs_torch.py times (same shapes, batch and loss; ours with its loss
scale, torch with AdamW and clipping). Ours runs under mindspore.Profiler (its per-op CPU table), torch under
torch.profiler (self time of each aten op). Each op is put in one category by its type and, for ours, its scope;
the table prints each category's share of the step's wall time (timed without the profiler), and the share that
no op accounts for (framework overhead: graph launch, Python, host syncs).
"""
from __future__ import annotations

import argparse
import csv
import re
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Callable

from bench.pretrain_step_vs_torch import import_ours, import_torch, make_batch, ours_step, torch_step

CATEGORIES = ("matmul", "LayerNorm", "attention softmax", "GELU", "bias add and its gradient", "dropout",
              "MLM/NSP loss (log-softmax)", "embeddings (gather, scatter)", "optimizer, loss scale, clipping",
              "transposes and copies", "other elementwise and reductions")

# This project's ops by type; scopes decide first (see ours_category).
OURS_BY_TYPE = {"MatMul": "matmul", "BatchMatMul": "matmul", "LayerNorm": "LayerNorm", "LayerNormGrad": "LayerNorm",
                "Softmax": "attention softmax", "BiasAdd": "bias add and its gradient",
                "BiasAddGrad": "bias add and its gradient", "LogSoftmax": "MLM/NSP loss (log-softmax)",
                "LogSoftmaxGrad": "MLM/NSP loss (log-softmax)", "Gather": "embeddings (gather, scatter)",
                "UnsortedSegmentSum": "embeddings (gather, scatter)", "Transpose": "transposes and copies",
                "Reshape": "transposes and copies", "BroadcastTo": "transposes and copies"}
TORCH_BY_NAME = {"aten::mm": "matmul", "aten::addmm": "matmul", "aten::bmm": "matmul",
                 "aten::native_layer_norm": "LayerNorm", "aten::native_layer_norm_backward": "LayerNorm",
                 "aten::_softmax": "attention softmax", "aten::_softmax_backward_data": "attention softmax",
                 "aten::gelu": "GELU", "aten::gelu_backward": "GELU", "aten::native_dropout": "dropout",
                 "aten::native_dropout_backward": "dropout", "aten::bernoulli_": "dropout",
                 "aten::_log_softmax": "MLM/NSP loss (log-softmax)",
                 "aten::_log_softmax_backward_data": "MLM/NSP loss (log-softmax)",
                 "aten::nll_loss_forward": "MLM/NSP loss (log-softmax)",
                 "aten::nll_loss_backward": "MLM/NSP loss (log-softmax)",
                 "aten::embedding_dense_backward": "embeddings (gather, scatter)",
                 "aten::index_select": "embeddings (gather, scatter)", "aten::index": "embeddings (gather, scatter)",
                 "aten::index_put_": "embeddings (gather, scatter)", "aten::index_add_": "embeddings (gather, scatter)",
                 "aten::copy_": "transposes and copies", "aten::clone": "transposes and copies",
                 "aten::contiguous": "transposes and copies"}
TORCH_CLIPPING = ("aten::_foreach_norm", "aten::linalg_vector_norm", "aten::_foreach_mul_", "aten::stack",
                  "aten::clamp", "aten::clamp_max")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in (("layers", 4), ("hidden", 256), ("seq", 128), ("batch", 16), ("steps", 3),
                          ("vocab", 8000), ("predictions", 20)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--optimizer", choices=("Lamb", "AdamWeightDecay"), default="Lamb")
    return parser.parse_args()


def wall_seconds(step: Callable[[], None], steps: int) -> float:
    """Median seconds per step over three rounds, without a profiler."""
    rounds = []
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(steps):
            step()
        rounds.append((time.perf_counter() - start) / steps)
    return sorted(rounds)[1]


def ours_category(op_type: str, scope: str) -> str:
    """The category of one of our ops: its scope (the cell path MindSpore records) first, then its type."""
    if "/optimizer" in scope or "scale_update" in scope or "clip" in scope or scope.count("/") <= 1:
        return "optimizer, loss scale, clipping"  # ops directly under Default: global norm, overflow check
    if "dropout" in scope:
        return "dropout"
    if "intermediate_act_fn" in scope:
        return "GELU"
    if "_SoftmaxBackward" in scope:
        return "attention softmax"
    return OURS_BY_TYPE.get(op_type, "other elementwise and reductions")


def profile_ours(args: argparse.Namespace) -> tuple[Counter, float]:
    """Milliseconds of op time per step by category, and the step's wall seconds."""
    import mindspore as ms
    import_ours()
    step = ours_step(args, make_batch(args))
    step()
    seconds = wall_seconds(step, args.steps)
    with tempfile.TemporaryDirectory() as output:
        profiler = ms.Profiler(output_path=output)
        for _ in range(args.steps):
            step()
        profiler.stop()
        profiler.analyse()
        table = next(Path(output).rglob("cpu_op_detail_info_*.csv"))
        times: Counter = Counter()
        with table.open(newline="") as f:
            for row in csv.DictReader(f):
                scope = re.sub(r"-op\d+$", "", row["full_op_name"])
                times[ours_category(row["op_type"], scope)] += float(row["op_total_time(ms)"]) / args.steps
    return times, seconds


def profile_torch(args: argparse.Namespace) -> tuple[Counter, float]:
    import torch
    import_torch()
    step = torch_step(args, make_batch(args))
    step()
    seconds = wall_seconds(step, args.steps)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
        for _ in range(args.steps):
            step()
    times: Counter = Counter()
    for event in profiler.events():
        if event.self_cpu_time_total <= 0:
            continue
        ancestors, parent = [], event.cpu_parent
        while parent is not None:
            ancestors.append(parent.name)
            parent = parent.cpu_parent
        if any(name.startswith("Optimizer.") for name in ancestors) or event.name.startswith("aten::_foreach") \
                or event.name in TORCH_CLIPPING:
            category = "optimizer, loss scale, clipping"
        else:
            category = TORCH_BY_NAME.get(event.name, "other elementwise and reductions")
        times[category] += event.self_cpu_time_total / 1000 / args.steps  # microseconds -> ms
    return times, seconds


def main() -> None:
    args = parse_args()
    print(f"shape {args.layers}x{args.hidden}, seq {args.seq}, batch {args.batch}, {args.predictions} predictions, "
          f"fp32, CPU; ours with {args.optimizer} and the loss scale, torch with AdamW; {args.steps} profiled steps")
    sides = {"ours": profile_ours(args), "torch": profile_torch(args)}
    for times, seconds in sides.values():
        times["framework overhead (no op)"] = max(0.0, seconds * 1000 - sum(times.values()))
    print(f"{'category':34s}" + "".join(f"{name + ' ms':>11s}{'share':>7s}" for name in sides))
    for category in CATEGORIES + ("framework overhead (no op)",):
        print(f"{category:34s}" + "".join(f"{times[category]:11.1f}{times[category] / (seconds * 1000):7.0%}"
                                          for times, seconds in sides.values()))
    print(f"{'step (wall, unprofiled)':34s}" + "".join(f"{seconds * 1000:11.1f}{'':7s}" for _, seconds in
                                                      sides.values()))

if __name__ == "__main__":
    main()
