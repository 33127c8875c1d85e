"""Draw the loss curve (raw and smoothed) and the learning rate of a run from its metrics.jsonl.

    python tools/plot_loss.py --metrics_file output/metrics.jsonl --output output/loss.png
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt
import numpy as np

from src.cli import ArgumentParser, run_cli


def read_metrics(path: Path) -> list[dict]:
    if not path.is_file():
        raise SystemExit(f"metrics file {path} does not exist: run_pretrain.py writes metrics.jsonl in --output_dir")
    rows = []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    raise SystemExit(f"metrics file {path} line {number} is not JSON: was it written by "
                                     f"run_pretrain.py?") from None
    if not rows:
        raise SystemExit(f"metrics file {path} is empty: the run logged no step yet")
    return rows


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    window = max(1, min(window, len(values)))
    return np.convolve(values, np.ones(window) / window, mode="valid")


def plot(rows: list[dict], output: Path) -> Path:
    steps = np.array([row["step"] for row in rows])
    losses = np.array([row["loss"] for row in rows], dtype=float)
    window = max(1, len(rows) // 50)
    figure, loss_axis = plt.subplots(figsize=(8, 4.5))
    loss_axis.plot(steps, losses, color="tab:blue", alpha=0.3, linewidth=0.8, label="loss")
    loss_axis.plot(steps[window - 1:], moving_average(losses, window), color="tab:blue",
                   label=f"loss, mean of {window} steps")
    loss_axis.set_xlabel("step")
    loss_axis.set_ylabel("MLM + NSP loss")
    lr_axis = loss_axis.twinx()
    lr_axis.plot(steps, [row["lr"] for row in rows], color="tab:orange", linewidth=1, label="learning rate")
    lr_axis.set_ylabel("learning rate")
    handles = loss_axis.get_legend_handles_labels()[0] + lr_axis.get_legend_handles_labels()[0]
    loss_axis.legend(handles, [h.get_label() for h in handles], loc="upper right")
    loss_axis.set_title(f"pretraining: loss {losses[0]:.3f} -> {moving_average(losses, window)[-1]:.3f}")
    figure.tight_layout()
    output.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def draw(argv: list[str]) -> Path:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--metrics_file", type=Path, required=True)
    parser.add_argument("--output", type=Path, help="PNG path (default: loss.png beside the metrics file)")
    args = parser.parse_args(argv)
    output = plot(read_metrics(args.metrics_file), args.output or args.metrics_file.with_name("loss.png"))
    print(f"loss curve: {output}")
    return output


def main(argv: list[str] | None = None) -> Path:
    return run_cli("plot_loss.py", draw, argv)


if __name__ == "__main__":
    main()
