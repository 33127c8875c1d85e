"""Training a network with a loss: optimizer, train-one-step cell, resume, logging, checkpoints, the loop.

One function, train(), shared by pretraining and every finetuning task.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn
from mindspore.train import Model
from mindspore.train.callback import Callback

from src.callbacks import CONSUMED_BATCHES, CheckpointSaver, TrainingLogger, checkpoints_in
from src.checkpoint import load_into, read_checkpoint
from src.config import RunConfig
from src.optim import create_optimizer
from src.train_step import TrainOneStepCell

def latest_checkpoint(path: str | Path, prefix: str = "checkpoint_bert") -> str:
    """A file as given; for a directory, its newest {prefix}-*.ckpt."""
    if Path(path).is_dir():
        found = checkpoints_in(Path(path), prefix)
        if not found:
            raise FileNotFoundError(f"checkpoint directory {path} holds no {prefix}-*.ckpt: pass a checkpoint file "
                                    f"or the directory a run saved into")
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


def sinks(data_sink: bool) -> bool:
    """Whether batches are sunk to the device: asked for, and not on CPU (which has no sink)."""
    return data_sink and ms.get_context("device_target") != "CPU"


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
    sinking = sinks(data_sink)
    if sinking and steps % sink_steps == 0:
        model.train(steps // sink_steps, dataset, callbacks=list(callbacks), dataset_sink_mode=True,
                    sink_size=sink_steps)
    else:
        if sinking:
            print(f"note: data sinking is off: {steps} steps are not a multiple of --data_sink_steps {sink_steps} "
                  f"(pick --train_steps or --data_sink_steps so they are)", flush=True)
        model.train(1, dataset, callbacks=list(callbacks), dataset_sink_mode=False)


@dataclass(frozen=True)
class CheckpointPolicy:
    directory: Path
    every: int = 1000
    keep: int = 1
    prefix: str = "checkpoint_bert"


def train(network: nn.Cell, run_config: RunConfig, make_dataset: Callable[[int, int], object], steps_per_epoch: int,
          total_steps: int, output_dir: Path, checkpoints: CheckpointPolicy | None, resume_from: str | Path = "",
          accumulation_steps: int = 1, loss_scaling: bool = True, data_sink: bool = False, sink_steps: int = 1,
          devices: int = 1) -> Path | None:
    """Train network (it returns the scalar loss) for total_steps calls; returns the last checkpoint written.

    make_dataset(epochs, skip_batches) builds the batches; a resumed run skips those already consumed.
    resume_from: a checkpoint, or a directory of them (its newest with the checkpoint policy's prefix).
    """
    optimizer = create_optimizer(run_config.optimizer, run_config.optimizer_settings(total_steps // accumulation_steps),
                                 network.trainable_params(), decay_steps=max(total_steps // accumulation_steps, 1))
    train_cell = TrainOneStepCell(network, optimizer, run_config.loss_scale if loss_scaling else None,
                                  run_config.clip_norm, accumulation_steps)
    train_cell.set_train()
    prefix = checkpoints.prefix if checkpoints else CheckpointPolicy.prefix
    start_step = resume(train_cell, network, latest_checkpoint(resume_from, prefix)) if resume_from else 0
    dataset = make_dataset(-(-total_steps // steps_per_epoch), start_step)
    output_dir.mkdir(parents=True, exist_ok=True)
    callbacks: list[Callback] = [TrainingLogger(steps_per_epoch, start_step, run_config.batch_size * devices,
                                                output_dir / "train_log.txt", output_dir / "metrics.jsonl", optimizer,
                                                optimizer.learning_rate, loss_scaling)]
    if checkpoints:
        callbacks.append(CheckpointSaver(train_cell, checkpoints.directory, checkpoints.every, checkpoints.keep,
                                         steps_per_epoch, start_step, checkpoints.prefix))
    print(f"training {run_config.bert_network} with {run_config.optimizer} on {ms.get_context('device_target')}: "
          f"steps {start_step + 1}..{total_steps}, {steps_per_epoch} per epoch, batch {run_config.batch_size} "
          f"x {devices} device(s)", flush=True)
    fit(train_cell, dataset, total_steps - start_step, callbacks, data_sink, sink_steps)
    if not checkpoints:
        return None
    found = checkpoints_in(checkpoints.directory, checkpoints.prefix)
    return found[-1] if found else None
