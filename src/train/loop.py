"""Training a network with a loss: optimizer, train-one-step cell, resume, logging, checkpoints, the loop.

One function, train(), shared by pretraining and every finetuning task.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import mindspore as ms
import numpy as np
from mindspore import nn
from mindspore.train import Model
from mindspore.train.callback import Callback

from src.cli import one_line
from src.config import RunConfig
from src.data.datasets import Batches
from src.disk_space import DiskFull, disk_full_message, free_bytes, is_disk_full, megabytes
from src.files.checkpoint import load_into, read_checkpoint
from src.files.run_files import check_writable, latest_checkpoint, lock_directories, plan_run_files
from src.preemption import Stopped, deferred
from src.train.callbacks import CONSUMED_BATCHES, CheckpointSaver, TimeLeft, TrainingLogger
from src.train.optim import create_optimizer
from src.train.train_step import TrainOneStepCell


def resume(train_cell: nn.Cell, network: nn.Cell, path: str | Path) -> int:
    """Load a checkpoint; returns how many batches the run that wrote it had consumed.

    A checkpoint written by a train cell (it holds the optimizer's global_step) restores everything: weights,
    optimizer moments, step and so the learning-rate position, loss scale. A weights-only checkpoint (converted,
    or from pretraining when finetuning) loads into the network and training starts at step 0.
    """
    params = read_checkpoint(path)
    if "global_step" in params:
        load_into(train_cell, params, f"checkpoint {path}",
                  allow_missing=("accumulated_grads.", "micro_step", "dropout_step"))
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
    flag: str = "--save_checkpoint_path"  # named in errors about the directory
    resume_flag: str = "--load_checkpoint_path"  # named in the line that says how to resume


class Progress(Callback):
    """The step the run has reached, and the stop a signal asks for (src/preemption.py) at the next step boundary:
    with data sinking, that is the end of the sink in flight. In a data-parallel run each rank stops at its own next
    boundary (ranks signalled a step apart can wait on each other: not yet handled, docs/reliability.md)."""

    def __init__(self, start_step: int, devices: int) -> None:
        super().__init__()
        self.start_step = start_step
        self.step = start_step
        self.devices = devices
        self.signals = None

    def on_train_step_end(self, run_context) -> None:
        self.step = self.start_step + run_context.original_args().cur_step_num
        if self.signals is None:
            return
        if self.signals.received is not None:
            run_context.request_stop()


def check_room_for_checkpoints(directory: Path, train_cell: nn.Cell, flag: str) -> None:
    needed = sum(parameter.data.nbytes for parameter in train_cell.get_parameters())
    free = free_bytes(directory)
    if free is not None and free < needed:
        raise DiskFull(f"the run's checkpoints need {megabytes(needed)} each but {directory} has {megabytes(free)} "
                       f"free: free space there or pass another {flag}")


def _resume_hint(files, checkpoints: CheckpointPolicy | None, saved_now: bool = False) -> str:
    """How to go on after a run stopped early: from its last checkpoint, if it has one."""
    if checkpoints is None:
        return "checkpoints are off (--enable_save_ckpt false), nothing was saved"
    found = files.checkpoints()
    if not found:
        return "no checkpoint was written yet; start the run again"
    state = f"saved {found[-1]}" if saved_now else f"the last checkpoint {found[-1]} is intact"
    return f"{state}; resume with {checkpoints.resume_flag} {found[-1].parent}"


def build_train_cell(network: nn.Cell, run_config: RunConfig, total_steps: int, accumulation_steps: int,
                     loss_scaling: bool) -> TrainOneStepCell:
    """The optimizer (its schedule over the run's optimizer steps) and the train-one-step cell around network."""
    updates = total_steps // accumulation_steps
    optimizer = create_optimizer(run_config.optimizer, run_config.optimizer_settings(updates),
                                 network.trainable_params(), decay_steps=max(updates, 1),
                                 lr_schedule=run_config.lr_schedule)
    train_cell = TrainOneStepCell(network, optimizer, run_config.loss_scale if loss_scaling else None,
                                  run_config.clip_norm, accumulation_steps)
    train_cell.set_train()
    return train_cell


PROBE_SKIPPED_STEPS = 2  # the first compiles the graphs, the second still allocates: not timed
PROBE_TIMED_STEPS = 8


class StepClock(Callback):
    """(step reached, clock reading) at the end of every step (with data sinking: of every sink)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        super().__init__()
        self.clock = clock
        self.readings: list[tuple[int, float]] = []

    def on_train_step_end(self, run_context) -> None:
        self.readings.append((run_context.original_args().cur_step_num, self.clock()))


def measure_seconds_per_step(train_cell: nn.Cell, dataset, skipped: int, timed: int, data_sink: bool = False,
                             sink_steps: int = 1, clock: Callable[[], float] | None = None) -> float:
    """Trains skipped + timed steps; returns the mean time of the timed ones: (clock at the last step's end - clock
    at the end of step `skipped`) / the steps between them. clock: time.perf_counter unless given."""
    timer = StepClock(clock or time.perf_counter)
    fit(train_cell, dataset, skipped + timed, [timer], data_sink, sink_steps)
    start_step, start_time = next(reading for reading in timer.readings if reading[0] >= skipped)
    last_step, last_time = timer.readings[-1]
    if last_step <= start_step:
        raise ValueError(f"the step-time probe ran {last_step} steps, fewer than the {skipped + timed} it needs")
    return (last_time - start_time) / (last_step - start_step)


def steps_in_minutes(minutes: float, seconds_per_step: float, multiple: int = 1) -> int:
    """The whole steps of seconds_per_step that fit in `minutes`, rounded down to a multiple of `multiple` (and at
    least one multiple)."""
    steps = int(minutes * 60.0 / seconds_per_step) if seconds_per_step > 0 else multiple
    return max(multiple, steps - steps % multiple)


def pipeline_copy(batches: Batches, epochs: int) -> ms.dataset.Dataset:
    """`epochs` epochs of the batches through a copy of their pipeline (as MindSpore copies a pipeline to run it):
    a node added to the original (repeat, take) would give it two consumers, which MindSpore refuses when the run
    then builds its own."""
    original = batches.dataset
    consumers, original.parent = original.parent, []
    try:
        dataset = copy.deepcopy(original)
    finally:
        original.parent = consumers
    return dataset.repeat(epochs) if epochs > 1 else dataset


def budget_steps(network: nn.Cell, run_config: RunConfig, batches: Batches, minutes: float, *,
                 accumulation_steps: int = 1, loss_scaling: bool = True, data_sink: bool = False,
                 sink_steps: int = 1, clock: Callable[[], float] | None = None) -> tuple[int, float]:
    """The steps that `minutes` of training hold (--train_minutes), measured as Izsak et al. (2021) set a
    schedule from a time budget: a probe train cell around network (the run's optimizer, loss scale, accumulation
    and sinking) trains PROBE_SKIPPED_STEPS steps, which compile, then PROBE_TIMED_STEPS timed ones on the run's
    first batches (both rounded up to whole sinks and accumulation windows); the steps are
    floor(60 * minutes / mean timed step time), rounded down to whole sinks. The network's weights are put back as
    they were and the probe is dropped. Returns (steps, seconds per step)."""
    sink = sink_steps if sinks(data_sink) else 1
    unit = math.lcm(sink, accumulation_steps)
    skipped, timed = (unit * -(-count // unit) for count in (PROBE_SKIPPED_STEPS, PROBE_TIMED_STEPS))
    weights = {parameter.name: parameter.data.asnumpy().copy() for parameter in network.get_parameters()}
    probe = build_train_cell(network, run_config, skipped + timed, accumulation_steps, loss_scaling)
    dataset = pipeline_copy(batches, -(-(skipped + timed) // batches.per_epoch))
    seconds = measure_seconds_per_step(probe, dataset, skipped, timed, data_sink, sink_steps, clock)
    for parameter in network.get_parameters():
        parameter.set_data(ms.Tensor(weights[parameter.name]))
    return steps_in_minutes(minutes, seconds, sink), seconds


def fit_until_stopped(train_cell: nn.Cell, dataset, steps: int, progress: Progress, callbacks: list[Callback],
                      data_sink: bool, sink_steps: int, data_source: str, resume_hint: Callable[[bool], str]) -> None:
    """fit(), with a signal ending it at the next step boundary and each way it can stop early turned into one
    line that says where the run stands (resume_hint(saved_now))."""
    with deferred() as signals:
        progress.signals = signals
        try:
            fit(train_cell, dataset, steps, [progress, *callbacks], data_sink, sink_steps)
        except Stopped as stop:  # a second signal: the step or the save in flight was abandoned
            raise Stopped(stop.signum, f"stopped by a second signal at step {progress.step}, before saving "
                                       f"it: {resume_hint(False)}") from None
        except (DiskFull, OSError) as error:
            if not isinstance(error, DiskFull) and not is_disk_full(error):
                raise
            what = str(error) if isinstance(error, DiskFull) else disk_full_message(error.filename or "", error)
            raise DiskFull(f"{what}; stopped at step {progress.step}: {resume_hint(False)}") from None
        except RuntimeError as error:
            if "dataset" not in str(error).lower():  # MindSpore's data pipeline errors say so
                raise
            raise ValueError(f"reading {data_source or 'the training data'} failed ({one_line(error)}): a "
                             f"record file is corrupt or of another kind; re-create it, then resume from the "
                             f"last checkpoint") from None
    if signals is not None and signals.received is not None:
        raise signals.stopped(f"stopped by {signals.stopped().signal_name} at step {progress.step}: "
                              f"{resume_hint(True)}")


def train(network: nn.Cell, run_config: RunConfig, batches: Batches, *, total_steps: int, output_dir: Path,
          checkpoints: CheckpointPolicy | None, resume_from: str | Path = "", accumulation_steps: int = 1,
          loss_scaling: bool = True, data_sink: bool = False, sink_steps: int = 1, devices: int = 1,
          data_source: str = "", describe: Callable[[Path, str], None] | None = None,
          check_only: bool = False, minutes: float | None = None) -> Path | None:
    """Train network (it returns the scalar loss) for total_steps calls; returns the last checkpoint written.

    Args:
        batches: one epoch of the training batches (src/data/datasets.record_batches), repeated as total_steps
            needs; a resumed run skips those already consumed.
        resume_from: a checkpoint, or a directory of them (the one written last: run_files.latest_checkpoint).
        devices: data-parallel ranks, for the global batch size in the log.
        data_source: the data's path, named when reading it fails mid-run.
        describe(checkpoint_dir, checkpoint_prefix): writes what goes beside the run's checkpoints, before
            training (finetuning: src/tasks/task_card.py).
        check_only: every check up to the first step (directories, locks, checkpoint room, resume point), then
            return None without training or writing.
        minutes: a budget of training time (run_pretrain.py --train_minutes): total_steps is replaced by the
            steps that budget_steps measures fit in it, before the run's train cell and schedule are built (not
            with check_only); a new run only, since a resumed one must keep its schedule.

    The run locks its directories and writes only its own files (src/files/run_files.py).
    """
    if not 0 < total_steps:
        raise ValueError(f"the run has {total_steps} steps to train: pass --train_steps / --epoch_size of at least 1")
    checkpoint_dir = checkpoints.directory if checkpoints else None
    if checkpoints:
        check_writable(checkpoint_dir, f"checkpoint directory ({checkpoints.flag})")
    check_writable(output_dir, "output directory (--output_dir)")
    prefix = checkpoints.prefix if checkpoints else CheckpointPolicy.prefix
    resume_path = latest_checkpoint(resume_from, prefix) if resume_from else None
    locks = lock_directories(checkpoint_dir, output_dir)
    try:
        files = plan_run_files(checkpoint_dir, prefix, output_dir, resume_path)
        if describe is not None and checkpoint_dir is not None and not check_only:
            describe(checkpoint_dir, files.checkpoint_prefix)
        if minutes and not check_only:
            total_steps, seconds = budget_steps(network, run_config, batches, minutes,
                                                accumulation_steps=accumulation_steps, loss_scaling=loss_scaling,
                                                data_sink=data_sink, sink_steps=sink_steps)
            print(f"--train_minutes {minutes:g}: {seconds:.4f} s a step after compilation -> {total_steps} steps "
                  f"(to resume this run, pass --train_steps {total_steps})", flush=True)
        train_cell = build_train_cell(network, run_config, total_steps, accumulation_steps, loss_scaling)
        optimizer = train_cell.optimizer
        if checkpoint_dir is not None:  # room for one checkpoint, before the first step rather than at the first save
            check_room_for_checkpoints(checkpoint_dir, train_cell, checkpoints.flag)
        start_step = resume(train_cell, network, resume_path) if resume_path else 0
        if minutes and start_step:
            raise ValueError(f"--train_minutes sets the schedule of a new run, but checkpoint {resume_path} resumes "
                             f"one at step {start_step}: resume with --train_steps, the steps its first run printed")
        if start_step >= total_steps:
            raise ValueError(f"checkpoint {resume_path} is at step {start_step}, at or past this run's last step "
                             f"{total_steps}: nothing to train; raise --train_steps / --epoch_size to go on")
        if start_step and not check_only:
            files.trim_metrics(start_step)
        steps_per_epoch = batches.per_epoch
        dataset = batches.epochs(-(-total_steps // steps_per_epoch), start_step)
        if check_only:
            steps = f"the steps of {minutes:g} minutes" if minutes else f"steps {start_step + 1}..{total_steps}"
            print(f"checks passed: {run_config.bert_network}, {steps}, logs in "
                  f"{output_dir}{f', checkpoints in {checkpoint_dir}' if checkpoint_dir else ''}", flush=True)
            return None
        callbacks: list[Callback] = [TrainingLogger(steps_per_epoch, start_step, run_config.batch_size * devices,
                                                    files.log, files.metrics, optimizer, optimizer.learning_rate,
                                                    loss_scaling),
                                     TimeLeft(start_step, total_steps, steps_per_epoch)]
        if checkpoints:
            callbacks.append(CheckpointSaver(train_cell, checkpoint_dir, checkpoints.every, checkpoints.keep,
                                             steps_per_epoch, start_step, files.checkpoint_prefix))
        print(f"training {run_config.bert_network} with {run_config.optimizer} on "
              f"{ms.get_context('device_target')}: steps {start_step + 1}..{total_steps}, {steps_per_epoch} per "
              f"epoch, batch {run_config.batch_size} x {devices} device(s)", flush=True)
        progress = Progress(start_step, devices)
        fit_until_stopped(train_cell, dataset, total_steps - start_step, progress, callbacks, data_sink, sink_steps,
                          data_source, lambda saved_now: _resume_hint(files, checkpoints, saved_now))
    finally:
        for lock in locks:
            lock.release()
    found = files.checkpoints()
    return found[-1] if found else None
