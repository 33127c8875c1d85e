"""GELU as cells: the exact erf form with a memory-lean bprop."""
from __future__ import annotations

import math

from mindspore import Tensor, nn, ops


class ExactGelu(nn.Cell):
    """gelu(x) = x * Phi(x) in its erf form (HuggingFace's "gelu"), with a bprop of its own.

    The derivative Phi(x) + x * phi(x) is computed from x alone: MindSpore's gradient of
    ops.gelu(approximate="none") kept about a dozen activation-sized intermediates a layer (docs/cpu_workarounds.md).
    """

    def construct(self, x: Tensor) -> Tensor:
        return 0.5 * x * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))

    def bprop(self, x: Tensor, out: Tensor, dout: Tensor) -> tuple[Tensor]:
        cdf = 0.5 * (1.0 + ops.erf(x * (1.0 / math.sqrt(2.0))))
        pdf = ops.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))
        return (dout * (cdf + x * pdf),)


def activation(name: str) -> nn.Cell:
    """The config's hidden_act as a cell: "gelu" (erf), "gelu_tanh" or "relu"."""
    if name == "gelu":
        return ExactGelu()
    if name == "gelu_tanh":
        return nn.GELU(approximate=True)
    return nn.ReLU()
