"""Device selection and data-parallel initialisation: HCCL on Ascend, NCCL on GPU, MindSpore's own collective
on CPU (msrun / mpirun). Rank and group size come from the launcher's environment through init()."""
from __future__ import annotations

import contextlib
import io
import logging

import mindspore as ms
from mindspore import log as ms_logger
from mindspore.communication import get_group_size, get_rank, init
from mindspore.context import ParallelMode

from src.config import BertConfig

DEVICE_TARGETS = ("Ascend", "GPU", "CPU")


def best_device_target() -> str:
    """Ascend if its runtime loads, then GPU, then CPU (MindSpore prints its plugin probing; kept quiet)."""
    for target in ("Ascend", "GPU"):
        if _quietly(ms.hal.is_available, target):
            return target
    return "CPU"


def _quietly(function, *args):
    """Call function without the plugin-probing lines MindSpore prints (its logger keeps its own stderr handle)."""
    logger = ms_logger._get_logger()
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            return function(*args)
    finally:
        logger.setLevel(level)


def setup_device(device_target: str | None, device_id: int = 0, distribute: bool = False) -> tuple[int, int]:
    """Graph mode on the chosen device; with distribute, joins the collective. Returns (rank, device_num)."""
    target = device_target or best_device_target()
    if target not in DEVICE_TARGETS:
        raise ValueError(f"device_target '{target}' is not one of {', '.join(DEVICE_TARGETS)}")
    if target != "CPU" and not _quietly(ms.hal.is_available, target):
        raise ValueError(f"--device_target {target}: MindSpore finds no usable {target} on this machine (device, "
                         f"driver or runtime libraries missing): pass --device_target CPU, or leave it out to use "
                         f"the best device present")
    ms.set_context(mode=ms.GRAPH_MODE)
    if target == "CPU" or distribute:
        ms.set_device(target)
    else:
        ms.set_device(target, device_id)
    if not distribute:
        return 0, 1
    init()
    rank, device_num = get_rank(), get_group_size()
    ms.reset_auto_parallel_context()
    ms.set_auto_parallel_context(parallel_mode=ParallelMode.DATA_PARALLEL, gradients_mean=True,
                                 device_num=device_num)
    return rank, device_num


def compute_type_for_device(config: BertConfig) -> BertConfig:
    """float16 compute is for GPU and Ascend; on CPU it is slower than float32 (docs/cpu_workarounds.md),
    so there a float16 preset runs in float32, and says so."""
    if ms.get_context("device_target") == "CPU" and config.compute_type == "float16":
        print("note: compute_type float16 runs as float32 on CPU (float16 is slower there)", flush=True)
        return config.replace(compute_type="float32")
    return config
