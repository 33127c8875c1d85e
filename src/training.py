"""Running a train cell over a dataset, and resuming one from a checkpoint; shared by every entry script."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import mindspore as ms
import numpy as np
from mindspore import nn
from mindspore.train import Model
from mindspore.train.callback import Callback

from src.callbacks import CONSUMED_BATCHES, checkpoints_in
from src.checkpoint import load_into, read_checkpoint

def latest_checkpoint(path: str | Path) -> str:
    """A file as given; for a directory, its newest checkpoint_bert-*.ckpt."""
    if Path(path).is_dir():
        found = checkpoints_in(Path(path), "checkpoint_bert")
        if not found:
            raise FileNotFoundError(f"load_checkpoint_path {path} holds no checkpoint_bert-*.ckpt to resume from")
        return str(found[-1])
    return str(path)


def resume(train_cell: nn.Cell, network: nn.Cell, path: str | Path) -> int:
    """Load a checkpoint; returns how many batches the run that wrote it had consumed.

    A checkpoint written by a train cell (it holds the optimizer's global_step) restores everything: weights,
    optimizer moments, step and so the learning-rate position, loss scale. A weights-only checkpoint (converted,
    or from pretraining when finetuning) loads into the network and training starts at step 0.
    """
    params = read_checkpoint(path)
    if "global_step" in params:
        load_into(train_cell, params, f"checkpoint {path}",
                  allow_missing=("accumulated_grads.", "micro_step", "window_overflow"))
        return int(np.asarray(params.get(CONSUMED_BATCHES, 0)).reshape(-1)[0])
    load_into(network, params, f"checkpoint {path}")
    return 0


def fit(train_cell: nn.Cell, dataset, steps: int, callbacks: Sequence[Callback], data_sink: bool,
        sink_steps: int = 1) -> None:
    """Train for `steps` calls of train_cell. With data sinking, batches go to the device sink_steps at a time.

    CPU has no sink: there Model.train would silently fall back to iterating the whole dataset once per sink
    "epoch", so CPU always takes the plain loop.
    """
    if steps <= 0:
        return
    model = Model(train_cell)
    dataset = dataset.take(steps)
    if data_sink and ms.get_context("device_target") != "CPU" and steps % sink_steps == 0:
        model.train(steps // sink_steps, dataset, callbacks=list(callbacks), dataset_sink_mode=True,
                    sink_size=sink_steps)
    else:
        model.train(1, dataset, callbacks=list(callbacks), dataset_sink_mode=False)
