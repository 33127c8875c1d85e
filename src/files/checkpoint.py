"""MindSpore .ckpt files: atomic writes, reads as numpy, and strict loading into a network.

Parameter names are the HuggingFace BertForPreTraining names (see src/model/bert.py) and stay stable:
a checkpoint written by any version of this project loads into any later one.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import mindspore as ms
import numpy as np
from mindspore import log as ms_log
from mindspore import nn

from src.disk_space import DiskFull, check_free_space, disk_full_message, is_disk_full


def write_checkpoint(params: Mapping[str, np.ndarray] | nn.Cell, path: str | Path,
                     extra: Mapping[str, int | float] | None = None) -> Path:
    """Write a .ckpt so that a reader never sees a half-written file: temporary file, then atomic rename.

    extra: scalars stored beside the parameters (e.g. how many batches the run consumed).
    A disk without room for it raises DiskFull (before writing when the free space is already short) and leaves
    no partial file; an interruption (Stopped, KeyboardInterrupt) leaves none either.
    """
    path = Path(path)
    if path.suffix != ".ckpt":
        raise ValueError(f"checkpoint path {path} must end in .ckpt")
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.stem}.{os.getpid()}.partial.ckpt")
    if isinstance(params, nn.Cell):
        save_obj = params
        needed = sum(parameter.data.nbytes for parameter in params.get_parameters())
    else:
        save_obj = [{"name": name, "data": ms.Tensor(np.ascontiguousarray(value))} for name, value in params.items()]
        needed = sum(np.asarray(value).nbytes for value in params.values())
    check_free_space(path, needed)
    try:
        with _quiet_mindspore_log():  # its [CRITICAL] line on a failed write would precede our one line
            ms.save_checkpoint(save_obj, str(partial), append_dict=dict(extra) if extra else None)
        os.replace(partial, path)
    except OSError as error:
        if is_disk_full(error):
            raise DiskFull(disk_full_message(path, error, needed)) from None
        raise
    finally:
        for leftover in (partial, partial.with_suffix(".tmp")):  # .tmp: MindSpore's own staging name
            if leftover.exists():
                leftover.unlink()
    return path


@contextmanager
def _quiet_mindspore_log() -> Iterator[None]:
    logger = ms_log._get_logger()  # MindSpore's Python logger (no public handle)
    disabled, logger.disabled = logger.disabled, True
    try:
        yield
    finally:
        logger.disabled = disabled


def read_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """All entries of a MindSpore .ckpt as numpy arrays, with a one-line error for a missing or corrupt file."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist: pass the path of a .ckpt file")
    try:
        params = ms.load_checkpoint(str(path))
    except (ValueError, RuntimeError, OSError) as error:
        raise ValueError(f"checkpoint {path} cannot be read ({str(error).splitlines()[0]}): "
                         f"the file is corrupt or not a MindSpore checkpoint; re-copy or re-convert it") from None
    return {name: value.asnumpy() for name, value in params.items()}


def load_into(network: nn.Cell, params: Mapping[str, np.ndarray], source: str,
              allow_missing: Iterable[str] = ()) -> list[str]:
    """Copy params into network, checking every name and shape; returns the names the network did not use.

    allow_missing: name prefixes that may be absent from params (a new task head on a pretrained body).
    The first parameter that is missing or has the wrong shape raises one line naming it and both shapes.
    """
    allow_missing = tuple(allow_missing)
    for parameter in network.get_parameters():
        name = parameter.name
        if name not in params:
            if name.startswith(allow_missing):
                continue
            raise ValueError(f"{source}: parameter '{name}' {tuple(parameter.shape)} is missing from the checkpoint "
                             f"(it holds {len(params)} entries): it was written for another model; convert it with "
                             f"tools/convert_checkpoint.py or pick the matching --config")
        value = params[name]
        if tuple(value.shape) != tuple(parameter.shape):
            raise ValueError(f"{source}: parameter '{name}' has shape {tuple(value.shape)} in the checkpoint but "
                             f"{tuple(parameter.shape)} in the model: pick the --config the checkpoint was "
                             f"trained with")
        parameter.set_data(ms.Tensor(value, dtype=parameter.dtype))
    used = {parameter.name for parameter in network.get_parameters()}
    return sorted(set(params) - used)


def load_checkpoint_into(network: nn.Cell, path: str | Path, allow_missing: Iterable[str] = ()) -> list[str]:
    """read_checkpoint + load_into, naming the file in any error."""
    return load_into(network, read_checkpoint(path), f"checkpoint {path}", allow_missing)
