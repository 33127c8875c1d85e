"""Training callbacks: the model zoo's per-step log line, a JSONL metrics file, and rolling atomic checkpoints.

Steps count calls of the train-one-step cell (micro-batches when accumulating), from the start of the run
that first began, so a resumed run goes on numbering where the killed one stopped.
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path

import mindspore as ms
import numpy as np
from mindspore import nn
from mindspore.train.callback import Callback

from src.files.checkpoint import write_checkpoint
from src.files.run_files import checkpoints_in


def epoch_and_percent(step: int, steps_per_epoch: int) -> tuple[int, float]:
    """The zoo's numbering: step 1..N of epoch 1 has percent 1/N..1.0; epochs count from 1."""
    epoch, within = divmod(step, steps_per_epoch)
    if within == 0:
        return epoch, 1.0
    return epoch + 1, within / steps_per_epoch


class TrainingLogger(Callback):
    """Prints `epoch: E, current epoch percent: P, step: S, outputs are (loss, overflow, loss_scale)` to stdout
    and the log file, and appends one JSON object per step to the metrics file.

    A non-finite loss without loss scaling stops training with one line; the skipped update and the last
    checkpoint are intact.
    """

    def __init__(self, steps_per_epoch: int, start_step: int, sequences_per_step: int, log_path: Path,
                 metrics_path: Path, optimizer: nn.Optimizer, lr_schedule: nn.Cell, loss_scaling: bool) -> None:
        super().__init__()
        self.steps_per_epoch = steps_per_epoch
        self.start_step = start_step
        self.sequences_per_step = sequences_per_step
        self.log_path = Path(log_path)
        self.metrics_path = Path(metrics_path)
        self.optimizer = optimizer
        self.lr_schedule = lr_schedule
        self.loss_scaling = loss_scaling
        self.last_time = None
        self.last_step = start_step

    def on_train_step_begin(self, run_context) -> None:
        if self.last_time is None:
            self.last_time = time.perf_counter()

    def on_train_step_end(self, run_context) -> None:
        params = run_context.original_args()
        loss, overflow, scale = (np.asarray(x.asnumpy()).item() for x in params.net_outputs)
        step = self.start_step + params.cur_step_num
        now = time.perf_counter()
        seconds_per_step = (now - self.last_time) / max(step - self.last_step, 1)
        self.last_time, self.last_step = now, step
        epoch, percent = epoch_and_percent(step, self.steps_per_epoch)
        line = (f"epoch: {epoch}, current epoch percent: {percent:.3f}, step: {step}, "
                f"outputs are ({loss:.6f}, {bool(overflow)}, {scale:g})")
        print(line, flush=True)
        with open(self.log_path, "a", encoding="utf-8") as log:
            log.write(line + "\n")
        updates = int(self.optimizer.global_step.asnumpy().reshape(-1)[0])
        lr = float(self.lr_schedule(ms.Tensor(max(updates - 1, 0), ms.int32)).asnumpy())
        record = {"step": step, "epoch": epoch, "loss": loss, "lr": lr, "loss_scale": scale,
                  "overflow": bool(overflow), "seconds_per_step": seconds_per_step,
                  "sequences_per_second": self.sequences_per_step / seconds_per_step if seconds_per_step else None}
        with open(self.metrics_path, "a", encoding="utf-8") as metrics:
            metrics.write(json.dumps(record) + "\n")
        if not self.loss_scaling and not math.isfinite(loss):
            raise FloatingPointError(f"loss is {loss} at step {step} without loss scaling (the update was skipped): "
                                     f"lower the learning rate or pass --enable_lossscale true, and resume from "
                                     f"the last checkpoint")


def clock(seconds: float) -> str:
    """seconds as h:mm:ss (m:ss under an hour)."""
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class TimeLeft(Callback):
    """A line at each tenth of the run (and its last step) with the time spent and an estimate of the time left:
    `progress: step 40/80 (epoch 2 of 4), 0:12 elapsed, about 0:12 left`. The estimate is the run's mean step
    time so far, graph compilation included, so it errs long early on."""

    def __init__(self, start_step: int, total_steps: int, steps_per_epoch: int) -> None:
        super().__init__()
        self.start_step = start_step
        self.total_steps = total_steps
        self.steps_per_epoch = steps_per_epoch
        self.every = max(1, math.ceil((total_steps - start_step) / 10))
        self.started = None
        self.reported = 0  # tenths reported; with data sinking a step end comes once a sink

    def on_train_begin(self, run_context) -> None:
        self.started = time.perf_counter()

    def on_train_step_end(self, run_context) -> None:
        done = run_context.original_args().cur_step_num
        step = self.start_step + done
        if done // self.every <= self.reported and step != self.total_steps:
            return
        self.reported = done // self.every
        elapsed = time.perf_counter() - self.started
        left = elapsed / done * (self.total_steps - step)
        epochs = -(-self.total_steps // self.steps_per_epoch)
        print(f"progress: step {step}/{self.total_steps} (epoch {epoch_and_percent(step, self.steps_per_epoch)[0]} "
              f"of {epochs}), {clock(elapsed)} elapsed, about {clock(left)} left", flush=True)


CONSUMED_BATCHES = "consumed_batches"  # stored in every checkpoint, so a resumed run skips that many batches


class CheckpointSaver(Callback):
    """Every `every` steps (and at the end) writes the whole train cell -- weights, optimizer moments, step,
    loss scale -- as {prefix}-{epoch}_{step}.ckpt, atomically, keeping the newest `keep` of this prefix (the
    run's own: src/files/run_files.py gives each run its prefix)."""

    def __init__(self, train_cell: nn.Cell, directory: Path, every: int, keep: int, steps_per_epoch: int,
                 start_step: int, prefix: str = "checkpoint_bert") -> None:
        super().__init__()
        self.train_cell = train_cell
        self.directory = Path(directory)
        self.every = every
        self.keep = keep
        self.steps_per_epoch = steps_per_epoch
        self.start_step = start_step
        self.prefix = prefix
        self.last_saved = start_step
        for stale in self.directory.glob(f".{prefix}-*.partial.*"):  # left by a run killed while writing
            stale.unlink()

    def save(self, step: int) -> Path:
        epoch, _ = epoch_and_percent(step, self.steps_per_epoch)
        path = write_checkpoint(self.train_cell, self.directory / f"{self.prefix}-{epoch}_{step}.ckpt",
                                extra={CONSUMED_BATCHES: step})
        self.last_saved = step
        for old in checkpoints_in(self.directory, self.prefix)[:-self.keep]:
            old.unlink()
        return path

    def on_train_step_end(self, run_context) -> None:
        step = self.start_step + run_context.original_args().cur_step_num
        if step - self.last_saved >= self.every:
            self.save(step)

    def on_train_end(self, run_context) -> None:
        step = self.start_step + run_context.original_args().cur_step_num
        if step != self.last_saved:
            self.save(step)
