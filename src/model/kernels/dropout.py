"""Dropout that a resumed run repeats exactly: masks are a pure function of (seed, step counter, site, position).

nn.Dropout keeps its random state inside the kernel, where no checkpoint sees it, and on MindSpore 2.10 CPU
neither ms.set_rng_state nor the generator-based ops (DropoutExt, unsupported on CPU) restore it. The step counter
here belongs to the train-one-step cell (src/train/train_step.py), so it is saved with the run's checkpoint.

The mask has two kernels that draw the same bits: MindSpore ops (GPU, Ascend) and, on CPU, one numpy function
run as a pyfunc Custom op, because MindSpore 2.10's CPU runtime keeps every intermediate of the ops' 16 integer steps
alive until the step ends (docs/cpu_workarounds.md); the numpy kernel allocates nothing the graph sees but the mask.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops

# lowbias32 (Chris Wellons' integer hash): a bijection of 32-bit words with very low bias. Computed in int32, not
# uint32 (whose bitwise kernels some Ascend chips lack): multiplication wraps; right shifts are arithmetic, so each
# is and-ed with a bit mask to make it logical. Those bit masks are full-shape tensors, which graph mode folds into
# constants: bitwise ops with a broadcast scalar were slower on CPU (docs/cpu_workarounds.md).
_MULTIPLIERS = (0x7FEB352D, 0x846CA68B)
_WORD = (1 << 32) - 1


def _signed(value: int) -> int:
    """A 32-bit word as the int32 holding the same bits."""
    value &= _WORD
    return value - (1 << 32) if value >= 1 << 31 else value


def lowbias32(x: int) -> int:
    """The hash of a Python int's low 32 bits; returns the unsigned 32-bit result."""
    x &= _WORD
    x ^= x >> 16
    x = (x * _MULTIPLIERS[0]) & _WORD
    x ^= x >> 15
    x = (x * _MULTIPLIERS[1]) & _WORD
    return x ^ (x >> 16)


def lowbias32_tensor(x: Tensor) -> Tensor:
    """The hash of every element of an int32 tensor (lowbias32's bits, read as int32)."""
    low16 = ops.full(x.shape, 0xFFFF, dtype=ms.int32)  # (x >> 16) & low16: the logical shift
    low17 = ops.full(x.shape, 0x1FFFF, dtype=ms.int32)
    x = ops.bitwise_xor(x, ops.bitwise_and(ops.bitwise_right_shift(x, 16), low16))
    x = x * _signed(_MULTIPLIERS[0])
    x = ops.bitwise_xor(x, ops.bitwise_and(ops.bitwise_right_shift(x, 15), low17))
    x = x * _signed(_MULTIPLIERS[1])
    return ops.bitwise_xor(x, ops.bitwise_and(ops.bitwise_right_shift(x, 16), low16))


def lowbias32_numpy(x: np.ndarray) -> np.ndarray:
    """lowbias32 of every element of a uint32 array, in place; returns it."""
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(16)
        x *= np.uint32(_MULTIPLIERS[0])
        x ^= x >> np.uint32(15)
        x *= np.uint32(_MULTIPLIERS[1])
        x ^= x >> np.uint32(16)
    return x


def host_mask_kernel(seed_key: int, site_key: int, limit: int, scale: float) -> ops.Custom:
    """A CPU op (mask = kernel(x, step)) that draws StepSeededDropout's scaled keep mask for x in numpy."""
    seed_word, site_word = np.uint32(seed_key & _WORD), np.uint32(site_key & _WORD)

    def scaled_keep_mask(x: np.ndarray, step: np.ndarray) -> np.ndarray:
        stream = lowbias32_numpy(np.array([int(step) & _WORD], np.uint32) + seed_word)
        stream = lowbias32_numpy(stream ^ site_word)
        half = (x.size + 1) // 2
        words = np.arange(half, dtype=np.uint32)
        words += stream
        words = lowbias32_numpy(words).view(np.int32)
        keep = np.empty(2 * half, np.float32)
        np.less(words, limit, out=keep[:half])
        words <<= 16
        np.less(words, limit, out=keep[half:])
        keep *= np.float32(scale)
        return keep[:x.size].reshape(x.shape).astype(x.dtype, copy=False)

    return ops.Custom(scaled_keep_mask, out_shape=lambda x_shape, _: x_shape, out_dtype=lambda x_dtype, _: x_dtype,
                      func_type="pyfunc")


class StepSeededDropout(nn.Cell):
    """Dropout whose mask is a pure function of (run seed, step counter, dropout site, element position).

    nn.Dropout keeps its random state inside the kernel, where no checkpoint sees it: a run resumed from a
    checkpoint would draw other masks than the run it continues. Here, for an input of n elements (row-major) at
    step t, with h = lowbias32 on 32-bit words and m = ceil(n / 2):

        stream = h(h(t + seed_key) ^ site_key)
        u_j    = h(j + stream) read as int32                          j = 0 .. m-1
        keep element j      if u_j < limit,  element m + j  if u_j * 2^16 (wrapping) < limit
        limit  = round(keep_prob * 2^16) * 2^16 - 2^31

    So each element's uniform is one 16-bit half of a hash (with its top bit flipped): one hash for two elements.
    Kept elements are scaled by 2^16 / round(keep_prob * 2^16), the inverse of the keep probability used (a
    probability below 2^-17 rounds to no dropout).

    seed_key, site_key and the counter t come from `seed_dropout` (the train-one-step cell calls it, owns t and
    adds 1 to it per call), so t is saved with the train cell's checkpoint and a resumed run draws the same masks.
    Until then t is the constant 0 and every site shares one key. Identity in evaluation (set_train(False)).
    Once attached on CPU, the mask comes from host_mask_kernel (same bits, less memory).
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        kept = int(round((1.0 - p) * (1 << 16)))
        self.active = kept < 1 << 16
        self.limit = _signed((kept << 16) - (1 << 31))
        self.scale = (1 << 16) / kept
        self.seed_key = 0
        self.site_key = 0
        self.host_kernel = None
        self._point_at(Tensor(0, ms.int32))

    def _point_at(self, step: Tensor) -> None:
        # Stored past Cell.__setattr__, which would register a Parameter as one of this cell's own: the counter
        # belongs to the train cell (its checkpoint), not to the model (whose parameter names are HuggingFace's and
        # whose weights-only checkpoints must not need it). Graph mode reads it as a free parameter of the
        # train cell's graph.
        object.__setattr__(self, "step", step)

    def attach(self, step: Parameter, seed_key: int, site_key: int, on_host: bool = False) -> None:
        """Draw masks from the counter `step` (int32 scalar) with the given keys (32-bit words); on_host: with
        host_mask_kernel (CPU only) instead of MindSpore ops."""
        self._point_at(step)
        self.seed_key = _signed(seed_key)
        self.site_key = _signed(site_key)
        self.host_kernel = host_mask_kernel(seed_key, site_key, self.limit, self.scale) if on_host else None

    def construct(self, x: Tensor) -> Tensor:
        if not self.training or not self.active:
            return x
        if self.host_kernel is not None:
            return x * ops.stop_gradient(self.host_kernel(x, self.step))
        stream = lowbias32_tensor(ops.bitwise_xor(lowbias32_tensor(self.step + self.seed_key), self.site_key))
        half = (x.size + 1) // 2
        words = lowbias32_tensor(ops.arange(half, dtype=ms.int32) + stream)  # [half]
        keep = ops.concat((words < self.limit, words * (1 << 16) < self.limit))  # [2 * half]
        if x.size % 2:
            keep = keep[:x.size]  # only when needed: on CPU the slice outweighed the rest of the mask
        keep = keep.reshape(x.shape)
        return x * ops.stop_gradient(keep.astype(x.dtype) * self.scale)


def seed_dropout(network: nn.Cell, step: Parameter, seed: int, rank: int = 0, on_host: bool | None = None) -> int:
    """Points every StepSeededDropout of network at the counter `step`; returns how many there are.

    The sites are numbered in network.cells_and_names() order, which the model's structure fixes, so the same
    model built again (a resumed run) gets the same keys. rank: data-parallel ranks draw different masks.
    on_host: draw the masks in numpy (default: when the device target is CPU).
    """
    if on_host is None:
        on_host = ms.get_context("device_target") == "CPU"
    sites = [cell for _, cell in network.cells_and_names() if isinstance(cell, StepSeededDropout)]
    seed_key = lowbias32(lowbias32(seed) ^ rank)
    for index, cell in enumerate(sites):
        cell.attach(step, seed_key, lowbias32(index + 0x9E3779B9), on_host)
    return len(sites)
