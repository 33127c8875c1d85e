"""The linear layer as MatMul + BiasAdd primitives, with the bias gradient as a row sum."""
from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer


def ms_dtype(name: str) -> ms.Type:
    return {"float32": ms.float32, "float16": ms.float16}[name]


class BiasAdd(nn.Cell):
    """rows + bias, with a bprop of its own: the bias gradient as a ReduceSum over the rows, which is faster on CPU
    than MindSpore's BiasAddGrad kernel (docs/cpu_workarounds.md)."""

    def __init__(self) -> None:
        super().__init__()
        self.sum_rows = ops.ReduceSum()  # a primitive: functional ops inside a bprop failed to compile

    def construct(self, rows: Tensor, bias: Tensor) -> Tensor:
        return ops.bias_add(rows, bias)

    def bprop(self, rows: Tensor, bias: Tensor, out: Tensor, dout: Tensor) -> tuple[Tensor, Tensor]:
        # summed in float32 whatever the compute type: thousands of fp16 rows would lose the small ones
        return dout, self.sum_rows(dout.astype(ms.float32), 0).astype(bias.dtype)


# Matrix products go through the MatMul / BatchMatMul primitives (flattened to 2-D for the linear layers): in
# graph mode on CPU, ops.dense and ops.matmul kept each call's buffers alive (docs/cpu_workarounds.md).
class Dense(nn.Cell):
    """y = x W^T + b with W of shape [out, in] (as torch.nn.Linear), computed in `compute_type`."""

    def __init__(self, in_features: int, out_features: int, initializer_range: float,
                 compute_type: str = "float32") -> None:
        super().__init__()
        self.weight = Parameter(initializer(TruncatedNormal(initializer_range), [out_features, in_features],
                                            ms.float32), name="weight")
        self.bias = Parameter(initializer("zeros", [out_features], ms.float32), name="bias")
        self.compute_type = ms_dtype(compute_type)
        self.matmul = ops.MatMul(transpose_b=True)
        self.bias_add = BiasAdd()

    def construct(self, x: Tensor) -> Tensor:
        rows = self.matmul(x.reshape(-1, x.shape[-1]).astype(self.compute_type), self.weight.astype(self.compute_type))
        return self.bias_add(rows, self.bias.astype(self.compute_type)).reshape(x.shape[:-1] + (-1,))
