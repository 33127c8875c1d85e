"""GELU as cells: the exact erf form with a memory-lean bprop, and an erf polynomial for the ONNX export."""
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


def erf_polynomial(x: Tensor) -> Tensor:
    """erf by Abramowitz and Stegun 7.1.26 (absolute error 1.5e-7; 1.5e-6 in float32) from ops that
    MindSpore's ONNX exporter knows: it has no Erf, Sign or Reciprocal."""
    a = ops.abs(x)
    t = ops.div(ops.ones_like(a), 1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    y = 1.0 - poly * ops.exp(-a * a)
    return ops.select(x < 0, -y, y)


class PortableGelu(nn.Cell):
    """The erf GELU with erf_polynomial: what an ONNX export computes instead of ExactGelu."""

    def construct(self, x: Tensor) -> Tensor:
        return 0.5 * x * (1.0 + erf_polynomial(x * (1.0 / math.sqrt(2.0))))
