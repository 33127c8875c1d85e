"""Matrix-multiply throughput of each framework at BERT's shapes, fp32 on CPU, side by side in one process.

    python bench/matmul_throughput.py [--rounds 5]

For each dense layer of a pretraining step (tokens x in -> out, weight stored [out, in] as nn.Dense and
torch.nn.Linear store it) and each of the three products its step runs -- forward y = x W^T, input gradient
dX = dY W, weight gradient dW = dY^T X -- GFLOP/s of MindSpore's MatMul with the matching transpose flags (graph
mode, one op, result copied to the host), torch and numpy's BLAS on the same arrays, alternating rounds, median.
The best figure over all frameworks at a large square shape stands for this CPU's attainable peak, and each figure
is printed as a share of it. Why: the pretraining step runs at about 0.4x PyTorch's at every shape
(bench/RESULTS.md), and the dense layers are most of its arithmetic.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Callable

import numpy as np

# (label, tokens, in, out): batch 16 x seq 128 tokens for 4 x 256, batch 8 x seq 128 for BERT-base
SHAPES = [("4x256 attention q/k/v/out", 2048, 256, 256), ("4x256 intermediate", 2048, 256, 1024),
          ("4x256 output", 2048, 1024, 256), ("base attention q/k/v/out", 1024, 768, 768),
          ("base intermediate", 1024, 768, 3072), ("base output", 1024, 3072, 768),
          ("square 2048 (peak)", 2048, 2048, 2048)]


# product: (first operand transposed, second operand transposed), as MatMul's flags
PRODUCTS = {"forward x W^T": (False, True), "dX = dY W": (False, False), "dW = dY^T X": (True, False)}


def mindspore_matmul(a: np.ndarray, b: np.ndarray, flags: tuple[bool, bool]) -> Callable[[], None]:
    import mindspore as ms
    from mindspore import nn, ops

    class MatMul(nn.Cell):
        def __init__(self) -> None:
            super().__init__()
            self.matmul = ops.MatMul(transpose_a=flags[0], transpose_b=flags[1])

        def construct(self, x, y):
            return self.matmul(x, y)

    cell, x, y = MatMul(), ms.Tensor(a), ms.Tensor(b)
    return lambda: cell(x, y).asnumpy()


def torch_matmul(a: np.ndarray, b: np.ndarray, flags: tuple[bool, bool]) -> Callable[[], None]:
    import torch
    x, y = torch.from_numpy(a), torch.from_numpy(b)
    x, y = (x.t() if flags[0] else x), (y.t() if flags[1] else y)
    return lambda: torch.matmul(x, y).numpy()


def numpy_matmul(a: np.ndarray, b: np.ndarray, flags: tuple[bool, bool]) -> Callable[[], None]:
    x, y = (a.T if flags[0] else a), (b.T if flags[1] else b)
    return lambda: x @ y


def operands(product: str, x: np.ndarray, weight: np.ndarray, grad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return {"forward x W^T": (x, weight), "dX = dY W": (grad, weight), "dW = dY^T X": (grad, x)}[product]


SIDES = {"MindSpore": mindspore_matmul, "torch": torch_matmul, "numpy": numpy_matmul}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    import mindspore as ms
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    rng = np.random.default_rng(0)
    results: dict[str, dict[str, float]] = {}
    for label, tokens, inner, outer in SHAPES:
        x = rng.standard_normal((tokens, inner), dtype=np.float32)
        weight = rng.standard_normal((outer, inner), dtype=np.float32)
        grad = rng.standard_normal((tokens, outer), dtype=np.float32)
        products = ["forward x W^T"] if label.startswith("square") else list(PRODUCTS)
        for product in products:
            a, b = operands(product, x, weight, grad)
            runs = {name: make(a, b, PRODUCTS[product]) for name, make in SIDES.items()}
            for run in runs.values():
                run()
                run()
            flops = 2 * tokens * inner * outer
            rates: dict[str, list[float]] = {name: [] for name in runs}
            for _ in range(args.rounds):
                for name, run in runs.items():
                    start = time.perf_counter()
                    for _ in range(5):
                        run()
                    rates[name].append(5 * flops / (time.perf_counter() - start) / 1e9)
            results[f"{label}, {product}"] = {name: statistics.median(values) for name, values in rates.items()}
    peak = max(results[f"{SHAPES[-1][0]}, forward x W^T"].values())
    print(f"fp32 matmul GFLOP/s, {os.cpu_count()} CPUs; peak = best at the 2048 square: {peak:.0f} GFLOP/s")
    print(f"{'layer, product':46s}" + "".join(f"{name:>18s}" for name in SIDES) + "   MindSpore / torch")
    for label, rates in results.items():
        cells = "".join(f"{rates[name]:7.0f} ({rates[name] / peak:4.0%} pk)" for name in SIDES)
        print(f"{label:46s}{cells}   {rates['MindSpore'] / rates['torch']:.2f}")


if __name__ == "__main__":
    main()
