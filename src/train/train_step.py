"""The train-one-step cell shared by pretraining and every finetuning task.

One cell, in the model zoo's loss-scale pattern, for any network that returns a scalar loss:
scaled backward pass -> optional accumulation over N micro-batches (unscaled) -> data-parallel gradient mean
(once per optimizer step: with accumulation, at the end of the window, not after every micro-batch) ->
global norm -> overflow check -> loss-scale update -> unscale and global-norm clip in one multiplication ->
optimizer step, skipped on overflow.
It also owns the dropout step counter (see src/model/kernels/dropout.py): one more per call, saved with
its checkpoint, so a resumed run draws the dropout masks the uninterrupted run would have drawn.
The overflow check tests that the gradients' global norm is finite instead of reading the NPU float status
that nn.TrainOneStepWithLossScaleCell uses, so it runs on CPU, GPU and Ascend alike; the same norm then clips.
(A scaled gradient so large that its square overflows float32, above 1.8e19, also counts as an overflow: the
loss scale halves, as for an inf.) Each gradient goes through one Mul after the backward pass: on CPU every
per-gradient op costs a parameter-sized buffer and a kernel launch (docs/cpu_workarounds.md).
"""
from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.communication.management import get_group_size, get_rank
from mindspore.context import ParallelMode

from src.config import LossScaleSettings
from src.model.kernels.dropout import seed_dropout
from src.train.optim import squared_norm


# Per-gradient work goes through HyperMap: on CPU in graph mode, the same ops written as a Python loop over the
# gradients kept every intermediate alive (docs/cpu_workarounds.md).
def _scaled(factor: Tensor, gradient: Tensor) -> Tensor:
    return gradient.astype(ms.float32) * factor


def _divided(divisor: Tensor, gradient: Tensor) -> Tensor:
    return gradient.astype(ms.float32) / divisor


class TrainOneStepCell(nn.Cell):
    """Calls network(*inputs) -> loss and updates optimizer.parameters. Returns (loss, overflow, loss_scale).

    loss_scale None: no scaling; an overflowing step (a non-finite gradient, e.g. from a NaN loss) is still
    skipped, so the weights stay finite and the caller can stop with a clear message.
    accumulation_steps N: every call adds its gradients to buffers; the optimizer steps on the mean of N
    micro-batches, every N-th call (an overflow anywhere in the window, on any device, skips that step: a
    non-finite gradient stays non-finite through the sums).
    dropout_seed: keys the network's dropout masks (default: the global seed, ms.set_seed; 0 if none is set).
    Parameters besides the network's and the optimizer's: loss_scale, dropout_step (the number of calls so far,
    which the dropout masks are drawn from), and with accumulation accumulated_grads.* and micro_step.
    """

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scale: LossScaleSettings | None = None,
                 clip_norm: float | None = 1.0, accumulation_steps: int = 1, dropout_seed: int | None = None) -> None:
        super().__init__(auto_prefix=False)
        self.network = network
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True, sens_param=True)
        initial = loss_scale.initial if loss_scale else 1.0
        self.loss_scale = Parameter(Tensor(initial, ms.float32), name="loss_scale")
        self.scale_update = (nn.DynamicLossScaleUpdateCell(initial, loss_scale.factor, loss_scale.window)
                             if loss_scale else None)
        self.clip_norm = clip_norm
        self.accumulation_steps = accumulation_steps
        if accumulation_steps > 1:
            self.accumulated_grads = self.weights.clone(prefix="accumulated_grads", init="zeros")
            self.micro_step = Parameter(Tensor(0, ms.int32), name="micro_step")
        self.hyper_map = ops.HyperMap()
        self.reducer = None
        rank = 0
        if ms.get_auto_parallel_context("parallel_mode") in (ParallelMode.DATA_PARALLEL, ParallelMode.HYBRID_PARALLEL):
            self.reducer = nn.DistributedGradReducer(self.weights, True, get_group_size())
            rank = get_rank()
        self.dropout_step = Parameter(Tensor(0, ms.int32), name="dropout_step", requires_grad=False)
        seed = dropout_seed if dropout_seed is not None else (ms.get_seed() or 0)
        seed_dropout(network, self.dropout_step, seed, rank)

    def construct(self, *inputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        loss = self.network(*inputs)
        scale = self.loss_scale.value()
        grads = self.grad(self.network, self.weights)(*inputs, scale.astype(loss.dtype))
        divisor = scale  # what the gradients are multiplied by: undone below, with the clipping, in one Mul each
        # After both passes through the network (loss and gradients), which so drew the same masks.
        ops.assign_add(self.dropout_step, Tensor(1, ms.int32))
        if self.accumulation_steps > 1:
            grads = self.hyper_map(ops.partial(_divided, scale), grads)
            for buffer, grad in zip(self.accumulated_grads, grads):
                ops.assign_add(buffer, grad)
            ops.assign_add(self.micro_step, Tensor(1, ms.int32))
            if self.micro_step % self.accumulation_steps != 0:
                return loss, ops.logical_not(ops.isfinite(self.global_norm(grads))), scale  # for the log
            grads = self.hyper_map(ops.partial(_divided, Tensor(self.accumulation_steps, ms.float32)),
                                   self.accumulated_grads)  # new tensors, read before the buffers are zeroed
            for buffer in self.accumulated_grads:
                ops.assign(buffer, ops.zeros_like(buffer))
            divisor = ops.ones_like(scale)
        if self.reducer is not None:
            grads = self.reducer(grads)
        norm = self.global_norm(grads) / divisor  # the same on every device: the reduced gradients
        overflow = ops.logical_not(ops.isfinite(norm))
        if self.scale_update is not None:
            overflow = self.scale_update(self.loss_scale, overflow)
        factor = 1.0 / divisor
        if self.clip_norm is not None:
            factor = factor * (self.clip_norm / ops.maximum(norm, self.clip_norm))
        grads = self.hyper_map(ops.partial(_scaled, factor), grads)
        if not overflow:
            loss = ops.depend(loss, self.optimizer(grads))
        return loss, overflow, scale

    def global_norm(self, grads: tuple[Tensor, ...]) -> Tensor:
        """The L2 norm of all gradients together (not finite if any gradient is not)."""
        return ops.sqrt(ops.addn(self.hyper_map(squared_norm, grads)))
