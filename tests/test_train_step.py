"""The shared train-one-step cell and the optimizers, checked numerically in fp32 without dropout."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn, ops

from src.config import BertConfig, LossScaleSettings, OptimizerSettings
from src.model.pretraining import BertNetworkWithLoss
from src.train.optim import WarmupPolynomialDecayLR, create_optimizer, decays
from src.train.train_step import TrainOneStepCell
from tests.helpers import SMALL, make_batch

RECORD_ORDER = ("input_ids", "input_mask", "token_type_ids", "next_sentence_labels", "masked_lm_positions",
                "masked_lm_ids", "masked_lm_weights")


def small_network(seed: int = 0) -> BertNetworkWithLoss:
    ms.set_seed(seed)
    return BertNetworkWithLoss(BertConfig(seq_length=16, **SMALL))


def inputs(batch: dict) -> list[Tensor]:
    return [Tensor(batch[name]) for name in RECORD_ORDER]


def weights_of(network) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy().copy() for p in network.trainable_params()}


def lamb(network, lr=1e-3, warmup=0):
    settings = OptimizerSettings(learning_rate=lr, end_learning_rate=0.0, power=1.0, warmup_steps=warmup,
                                 weight_decay=0.01, eps=1e-6)
    return create_optimizer("Lamb", settings, network.trainable_params(), decay_steps=100)


def test_learning_rate_warms_up_linearly_then_decays_polynomially():
    schedule = WarmupPolynomialDecayLR(1e-3, 1e-5, warmup_steps=10, decay_steps=100, power=2.0)
    for step in (0, 5, 9, 10, 50, 99, 100, 150):
        expected = 1e-3 * step / 10 if step < 10 else (1e-3 - 1e-5) * (1 - min(step, 100) / 100) ** 2 + 1e-5
        assert float(schedule(Tensor(step, ms.int32)).asnumpy()) == pytest.approx(expected, rel=1e-5)


def numpy_lamb_step(w, m, v, g, t, lr, weight_decay, beta1=0.9, beta2=0.999, eps=1e-6):
    """LAMB (You et al. 2019, Algorithm 2) for one tensor, written from the paper."""
    m = beta1 * m + (1 - beta1) * g
    v = beta2 * v + (1 - beta2) * g * g
    r = (m / (1 - beta1 ** t)) / (np.sqrt(v / (1 - beta2 ** t)) + eps) + weight_decay * w
    w_norm, r_norm = np.linalg.norm(w), np.linalg.norm(r)
    ratio = w_norm / r_norm if w_norm > 0 and r_norm > 0 else 1.0
    return w - lr * ratio * r, m, v


def test_lamb_matches_the_paper_on_cpu_and_skips_decay_on_layernorm_and_bias():
    network = small_network()
    optimizer = lamb(network, lr=1e-2)
    params = network.trainable_params()
    state = {p.name: (p.asnumpy().astype(np.float64), 0.0, 0.0) for p in params}
    rng = np.random.RandomState(0)
    for t in (1, 2, 3):
        gradients = [rng.randn(*p.shape).astype(np.float32) for p in params]
        optimizer(tuple(Tensor(g) for g in gradients))
        lr = 1e-2 * (1 - (t - 1) / 100)  # the schedule reads the step count before this update
        for p, g in zip(params, gradients):
            w, m, v = state[p.name]
            state[p.name] = numpy_lamb_step(w, m, v, g.astype(np.float64), t, lr, 0.01 if decays(p) else 0.0)
    for p in params:
        np.testing.assert_allclose(p.asnumpy(), state[p.name][0], rtol=1e-4, atol=1e-6, err_msg=p.name)
    names = {p.name for p in params if not decays(p)}
    assert "bert.embeddings.LayerNorm.weight" in names and "cls.predictions.bias" in names
    assert "bert.encoder.layer.0.attention.self.query.weight" not in names


@pytest.mark.parametrize("name", ["AdamWeightDecay", "Momentum"])
def test_other_optimizers_run_in_the_train_cell_and_lower_the_loss(name):
    network = small_network()
    settings = OptimizerSettings(learning_rate=1e-2 if name == "Momentum" else 1e-3, warmup_steps=0, power=1.0)
    cell = TrainOneStepCell(network, create_optimizer(name, settings, network.trainable_params(), 100))
    cell.set_train()
    batch = inputs(make_batch(1, 4, 16, 99, [16, 12, 9, 16], 3))
    losses = [float(cell(*batch)[0].asnumpy()) for _ in range(15)]
    assert losses[-1] < 0.8 * losses[0], losses


def momentum(network):
    settings = OptimizerSettings(learning_rate=0.1, warmup_steps=0, power=1.0, weight_decay=0.0)
    return create_optimizer("Momentum", settings, network.trainable_params(), decay_steps=100)


# Momentum without clipping sees the size of the mean gradient; Lamb with clipping is the default path.
@pytest.mark.parametrize("make_optimizer, clip_norm", [(momentum, None), (lamb, 1.0)])
def test_accumulating_micro_batches_equals_one_step_on_the_concatenated_batch(make_optimizer, clip_norm):
    big = make_batch(3, 8, 16, 99, [16, 11, 16, 7, 16, 13, 10, 16], 3)
    halves = [{k: v[:4] for k, v in big.items()}, {k: v[4:] for k, v in big.items()}]

    reference = small_network()
    TrainOneStepCell(reference, make_optimizer(reference), clip_norm=clip_norm)(*inputs(big))

    accumulated = small_network()
    cell = TrainOneStepCell(accumulated, make_optimizer(accumulated), clip_norm=clip_norm, accumulation_steps=2)
    before = weights_of(accumulated)
    cell(*inputs(halves[0]))
    after_first = weights_of(accumulated)
    cell(*inputs(halves[1]))
    assert all(np.array_equal(before[n], after_first[n]) for n in before), "the first micro-batch must not update"
    expected = weights_of(reference)
    changed = 0
    for name, value in weights_of(accumulated).items():
        np.testing.assert_allclose(value, expected[name], rtol=1e-4, atol=1e-6, err_msg=name)
        changed += not np.array_equal(value, before[name])
    assert changed > 0.9 * len(before)


def test_scaled_gradients_are_unscaled_and_clipped_to_the_global_norm():
    """Momentum's first step moves the weights by -lr * g: a run without loss scale or clipping reads g; with the
    loss scale on, clip_norm = 0.1 |g| scales every gradient by 0.1, and a clip_norm above |g| changes nothing."""
    batch = inputs(make_batch(2, 4, 16, 99, [16, 12, 9, 16], 3))

    def first_step(loss_scale, clip_norm):
        network = small_network()
        before = weights_of(network)
        TrainOneStepCell(network, momentum(network), loss_scale, clip_norm)(*batch)
        return {name: value - before[name] for name, value in weights_of(network).items()}

    plain = first_step(None, None)
    norm = np.sqrt(sum(np.square(d.astype(np.float64)).sum() for d in plain.values())) / 0.1  # |g|, lr 0.1
    scaled = LossScaleSettings(initial=2.0 ** 10, factor=2, window=1000)
    for clip_norm, factor in ((0.1 * norm, 0.1), (2.0 * norm, 1.0)):
        moved = first_step(scaled, clip_norm)
        for name, delta in plain.items():
            np.testing.assert_allclose(moved[name], factor * delta, rtol=1e-3, atol=1e-7, err_msg=name)


def test_an_inf_gradient_skips_the_update_halves_the_scale_and_the_scale_grows_after_the_window():
    network = small_network()
    optimizer = lamb(network)
    cell = TrainOneStepCell(network, optimizer, LossScaleSettings(initial=2.0 ** 16, factor=2, window=3))
    clean = make_batch(5, 2, 16, 99, [16, 12], 3)
    poisoned = dict(clean, masked_lm_weights=np.full_like(clean["masked_lm_weights"], np.inf))

    before = weights_of(network)
    loss, overflow, scale = cell(*inputs(poisoned))
    assert bool(overflow.asnumpy()) and float(scale.asnumpy()) == 2.0 ** 16
    assert all(np.array_equal(before[n], v) for n, v in weights_of(network).items())
    assert optimizer.global_step.asnumpy().item() == 0, "a skipped step must not advance the learning rate"
    assert float(cell.loss_scale.asnumpy()) == 2.0 ** 15

    scales = []
    for _ in range(3):
        _, overflow, scale = cell(*inputs(clean))
        assert not bool(overflow.asnumpy())
        scales.append(float(scale.asnumpy()))
    assert scales == [2.0 ** 15] * 3 and float(cell.loss_scale.asnumpy()) == 2.0 ** 16
    assert optimizer.global_step.asnumpy().item() == 3
    assert not np.array_equal(before["cls.predictions.bias"], weights_of(network)["cls.predictions.bias"])


def test_an_overflow_in_any_micro_batch_skips_the_accumulated_step():
    network = small_network()
    cell = TrainOneStepCell(network, lamb(network), LossScaleSettings(initial=1024.0, factor=2, window=100),
                            accumulation_steps=2)
    clean = make_batch(5, 2, 16, 99, [16, 12], 3)
    poisoned = dict(clean, masked_lm_weights=np.full_like(clean["masked_lm_weights"], np.inf))
    before = weights_of(network)
    cell(*inputs(poisoned))
    cell(*inputs(clean))
    assert all(np.array_equal(before[n], v) for n, v in weights_of(network).items())
    assert float(cell.loss_scale.asnumpy()) == 512.0
    cell(*inputs(clean))
    cell(*inputs(clean))
    assert not all(np.array_equal(before[n], v) for n, v in weights_of(network).items())


class CountingReducer(nn.Cell):
    """Stands in for nn.DistributedGradReducer (one device): passes the gradients through, counts its calls."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = Parameter(Tensor(0, ms.int32), name="reducer_calls", requires_grad=False)

    def construct(self, grads):
        ops.assign_add(self.calls, Tensor(1, ms.int32))
        return grads


@pytest.mark.slow
@pytest.mark.parametrize("accumulation_steps", [1, 3])
def test_gradients_are_all_reduced_once_per_optimizer_step(accumulation_steps):
    """With accumulation the data-parallel mean runs once per window, on the accumulated gradients, not on every
    micro-batch; the weights are those of the same cell without a reducer."""
    batches = [make_batch(seed, 2, 16, 99, [16, 12], 3) for seed in range(6)]
    runs = {}
    for reduced in (False, True):
        network = small_network()
        cell = TrainOneStepCell(network, lamb(network), accumulation_steps=accumulation_steps)
        if reduced:
            cell.reducer = CountingReducer()
        for batch in batches:
            cell(*inputs(batch))
        runs[reduced] = weights_of(network)
        if reduced:
            assert int(cell.reducer.calls.asnumpy()) == len(batches) // accumulation_steps
    assert all(np.array_equal(runs[True][name], value) for name, value in runs[False].items())
