"""LayerNorm over the last axis in float32, whose gradient on CPU is one numpy kernel.

MindSpore 2.10's CPU LayerNormGrad was the largest share of the CPU step's gap to torch (docs/cpu_workarounds.md).
On CPU the gradient is computed by `host_layer_norm_grad`, a numpy function run as a pyfunc Custom op (as the dropout
masks are, src/model/kernels/dropout.py); the forward pass stays MindSpore's LayerNorm, so exported graphs and other
devices are unchanged.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import initializer


def layer_norm_grad_numpy(x: np.ndarray, dy: np.ndarray, gamma: np.ndarray, eps: float
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dgamma, dbeta) of y = gamma * (x - mean) / sqrt(var + eps) + beta over the last axis, in float32:
    dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy * gamma."""
    rows = x.reshape(-1, x.shape[-1])
    dy = dy.reshape(rows.shape)
    mean = rows.mean(axis=-1, keepdims=True)
    xhat = rows - mean
    rstd = 1.0 / np.sqrt(np.einsum("ij,ij->i", xhat, xhat)[:, None] / rows.shape[-1] + np.float32(eps))
    xhat *= rstd
    dgamma = np.einsum("ij,ij->j", dy, xhat)
    dbeta = dy.sum(axis=0)
    g = dy * gamma
    projection = np.einsum("ij,ij->i", g, xhat)[:, None] / rows.shape[-1]
    g -= g.mean(axis=-1, keepdims=True)
    xhat *= projection
    g -= xhat
    g *= rstd
    return g.reshape(x.shape), dgamma.astype(np.float32), dbeta.astype(np.float32)


def host_layer_norm_grad(eps: float) -> ops.Custom:
    """A CPU op (dx, dgamma, dbeta) = kernel(x, dy, gamma) computing layer_norm_grad_numpy."""
    def kernel(x: np.ndarray, dy: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return layer_norm_grad_numpy(x, dy, gamma, eps)

    return ops.Custom(kernel, out_shape=lambda x, dy, gamma: (x, gamma, gamma),
                      out_dtype=lambda x, dy, gamma: (x, gamma, gamma), func_type="pyfunc")


class LayerNormFunction(nn.Cell):
    """y = LayerNorm(x; gamma, beta), with the gradient from host_layer_norm_grad. The parameters come in as
    inputs: a cell with its own bprop may not hold Parameters."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.layer_norm = ops.LayerNorm(begin_norm_axis=-1, begin_params_axis=-1, epsilon=eps)
        self.gradient = host_layer_norm_grad(eps)

    def construct(self, x: Tensor, gamma: Tensor, beta: Tensor) -> Tensor:
        return self.layer_norm(x, gamma, beta)[0]

    def bprop(self, x: Tensor, gamma: Tensor, beta: Tensor, out: Tensor, dout: Tensor
              ) -> tuple[Tensor, Tensor, Tensor]:
        return self.gradient(x, dout, gamma)


class LayerNorm(nn.Cell):
    """LayerNorm over the last axis, always in float32 (weight/bias named as in HuggingFace). on_host: the
    gradient from the numpy kernel (default: when the device target is CPU)."""

    def __init__(self, size: int, eps: float, on_host: bool | None = None) -> None:
        super().__init__()
        self.weight = Parameter(initializer("ones", [size], ms.float32), name="weight")
        self.bias = Parameter(initializer("zeros", [size], ms.float32), name="bias")
        if on_host is None:
            on_host = ms.get_context("device_target") == "CPU"
        self.layer_norm = LayerNormFunction(eps) if on_host else ops.LayerNorm(-1, -1, epsilon=eps)
        self.on_host = on_host

    def construct(self, x: Tensor) -> Tensor:
        if self.on_host:
            return self.layer_norm(x.astype(ms.float32), self.weight, self.bias)
        return self.layer_norm(x.astype(ms.float32), self.weight, self.bias)[0]
