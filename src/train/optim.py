"""Optimizers (Lamb, AdamWeightDecay, Momentum) with a warmup, then a polynomial decay or a linear or cosine cooldown
of the learning rate.

Weight decay skips LayerNorm parameters and biases. MindSpore's nn.Lamb runs a fused kernel that CPU lacks
("Unsupported op [Lamb] on CPU"); PortableLamb keeps nn.Lamb's parameters and state names but computes the
same update from primitive ops, so one optimizer runs on CPU, GPU and Ascend.
"""
from __future__ import annotations

import math
from typing import Iterable

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.nn.learning_rate_schedule import LearningRateSchedule

from src.config import OptimizerSettings

OPTIMIZERS = ("Lamb", "AdamWeightDecay", "Momentum")


class WarmupPolynomialDecayLR(LearningRateSchedule):
    """lr * step / warmup while step < warmup, then (lr - end) * (1 - step / decay_steps)^power + end."""

    def __init__(self, learning_rate: float, end_learning_rate: float, warmup_steps: int, decay_steps: int,
                 power: float) -> None:
        super().__init__()
        self.learning_rate = learning_rate
        self.end_learning_rate = end_learning_rate
        self.warmup_steps = max(warmup_steps, 0)
        self.decay_steps = max(decay_steps, 1)
        self.power = power

    def construct(self, global_step: Tensor) -> Tensor:
        step = global_step.astype(ms.float32)
        progress = ops.minimum(step, float(self.decay_steps)) / self.decay_steps
        decayed = (self.learning_rate - self.end_learning_rate) * ops.pow(1.0 - progress, self.power) \
            + self.end_learning_rate
        if self.warmup_steps == 0:
            return decayed
        warmup = self.learning_rate * step / self.warmup_steps
        return ops.select(step < self.warmup_steps, warmup, decayed)


class WarmupCooldownLR(LearningRateSchedule):
    """lr * step / warmup while step < warmup, then a cooldown from lr to end at decay_steps, with
    p = min(step - warmup, decay_steps - warmup) / (decay_steps - warmup):

        linear:  end + (lr - end) * (1 - p)                  (Izsak et al. 2021; Cramming's one-cycle)
        cosine:  end + (lr - end) * (1 + cos(pi * p)) / 2

    Unlike WarmupPolynomialDecayLR (the zoo's, whose decay counts from step 0), the cooldown starts at the peak.
    """

    def __init__(self, learning_rate: float, end_learning_rate: float, warmup_steps: int, decay_steps: int,
                 shape: str) -> None:
        super().__init__()
        if shape not in ("linear", "cosine"):
            raise ValueError(f"cooldown '{shape}' is not one of linear, cosine")
        self.learning_rate = learning_rate
        self.end_learning_rate = end_learning_rate
        self.warmup_steps = max(warmup_steps, 0)
        self.cooldown_steps = max(decay_steps - self.warmup_steps, 1)
        self.cosine = shape == "cosine"

    def construct(self, global_step: Tensor) -> Tensor:
        step = global_step.astype(ms.float32)
        progress = ops.clamp(step - self.warmup_steps, 0.0, float(self.cooldown_steps)) / self.cooldown_steps
        remaining = (1.0 + ops.cos(progress * math.pi)) / 2.0 if self.cosine else 1.0 - progress
        cooled = (self.learning_rate - self.end_learning_rate) * remaining + self.end_learning_rate
        if self.warmup_steps == 0:
            return cooled
        warmup = self.learning_rate * step / self.warmup_steps
        return ops.select(step < self.warmup_steps, warmup, cooled)


def learning_rate_schedule(kind: str, settings: OptimizerSettings, decay_steps: int) -> LearningRateSchedule:
    """The run config's lr_schedule over decay_steps optimizer steps: the zoo's polynomial decay, or a linear or
    cosine cooldown."""
    if kind == "polynomial":
        return WarmupPolynomialDecayLR(settings.learning_rate, settings.end_learning_rate, settings.warmup_steps,
                                       decay_steps, settings.power)
    return WarmupCooldownLR(settings.learning_rate, settings.end_learning_rate, settings.warmup_steps, decay_steps,
                            kind)


def squared_norm(x: Tensor) -> Tensor:
    """The sum of x's squares, reduced over the last axis first: a whole-tensor ReduceSum is slower on CPU
    (docs/cpu_workarounds.md)."""
    return ops.square(x).sum(-1).sum()


def _lamb_update(beta1: Tensor, beta2: Tensor, eps: Tensor, m_correction: Tensor, v_correction: Tensor, lr: Tensor,
                 weight_decay: Tensor, param: Parameter, m: Parameter, v: Parameter, gradient: Tensor,
                 decay_flag: bool) -> Tensor:
    """One LAMB step for one parameter (nn.Lamb's documented formula, bias-corrected moments; the corrections
    1 / (1 - beta^t) come as scalars: on CPU a tensor Div costs more than a Mul, docs/cpu_workarounds.md)."""
    gradient = gradient.astype(ms.float32)
    next_m = beta1 * m + (1.0 - beta1) * gradient
    next_v = beta2 * v + (1.0 - beta2) * ops.square(gradient)
    update = next_m * m_correction / (ops.sqrt(next_v * v_correction) + eps)
    if decay_flag:
        update = update + weight_decay * param
    w_norm = ops.sqrt(squared_norm(param))
    u_norm = ops.sqrt(squared_norm(update))
    trust_ratio = ops.select(w_norm > 0, ops.select(u_norm > 0, w_norm / u_norm, ops.ones_like(w_norm)),
                             ops.ones_like(w_norm))
    next_param = param - lr * trust_ratio * update
    ops.assign(m, next_m)
    ops.assign(v, next_v)
    return ops.assign(param, next_param)


class PortableLamb(nn.Lamb):
    """nn.Lamb's interface and state (lamb_m.*, lamb_v.*, global_step) with the update built from primitive ops."""

    def construct(self, gradients: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        weight_decay = self.get_weight_decay()
        lr = self.get_lr()
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        step = self.global_step.astype(ms.float32)
        m_correction = 1.0 / (1.0 - ops.pow(self.beta1, step))
        v_correction = 1.0 / (1.0 - ops.pow(self.beta2, step))
        if not self.is_group:
            weight_decay = (weight_decay,) * len(self._parameters)
        return self.hyper_map(ops.partial(_lamb_update, self.beta1, self.beta2, self.eps, m_correction, v_correction,
                                          lr),
                              weight_decay, self._parameters, self.moments1, self.moments2, gradients,
                              self.decay_flags)


def decays(parameter: Parameter) -> bool:
    """Weight decay applies to matrices and embeddings, not to LayerNorm parameters or biases."""
    name = parameter.name.lower()
    return "layernorm" not in name and "bias" not in name


def create_optimizer(name: str, settings: OptimizerSettings, parameters: Iterable[Parameter],
                     decay_steps: int, lr_schedule: str = "polynomial") -> nn.Optimizer:
    """The named optimizer over parameters, with weight decay grouped by `decays` and a scheduled lr."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer '{name}': choose one of {', '.join(OPTIMIZERS)}")
    parameters = list(parameters)
    schedule = learning_rate_schedule(lr_schedule, settings, decay_steps)
    groups = [{"params": [p for p in parameters if decays(p)], "weight_decay": settings.weight_decay},
              {"params": [p for p in parameters if not decays(p)], "weight_decay": 0.0},
              {"order_params": parameters}]
    if name == "Lamb":
        return PortableLamb(groups, schedule, settings.beta1, settings.beta2, settings.eps)
    if name == "AdamWeightDecay":
        return nn.AdamWeightDecay(groups, schedule, settings.beta1, settings.beta2, settings.eps)
    return nn.Momentum(groups, schedule, settings.momentum)
