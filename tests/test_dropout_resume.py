"""Dropout a resumed run repeats: masks are a function of (seed, step counter, site, element), the counter is
saved with the train cell, and a run killed and resumed from its checkpoint ends bit-identical to one that was not."""
import mindspore as ms
import numpy as np
import pytest
from mindspore import Parameter, Tensor, nn

from src.config import BertConfig, LossScaleSettings, OptimizerSettings
from src.files.checkpoint import load_into, read_checkpoint, write_checkpoint
from src.model.kernels.dropout import StepSeededDropout, lowbias32, seed_dropout
from src.model.pretraining import BertNetworkWithLoss
from src.model.task_heads import BertClassifierWithLoss
from src.train.optim import create_optimizer
from src.train.train_step import TrainOneStepCell
from tests.helpers import SMALL, make_batch

RECORD_ORDER = ("input_ids", "input_mask", "token_type_ids", "next_sentence_labels", "masked_lm_positions",
                "masked_lm_ids", "masked_lm_weights")
WITH_DROPOUT = dict(SMALL, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1)
TRAIN_CELL_ONLY = ("accumulated_grads.", "micro_step")


def numpy_lowbias32(x: np.ndarray) -> np.ndarray:
    """Chris Wellons' lowbias32 on uint32, written from its definition."""
    x = x.astype(np.uint32)
    with np.errstate(over="ignore"):
        x ^= x >> np.uint32(16)
        x = x * np.uint32(0x7FEB352D)
        x ^= x >> np.uint32(15)
        x = x * np.uint32(0x846CA68B)
        x ^= x >> np.uint32(16)
    return x


def numpy_keep_mask(seed_key: int, site_key: int, step: int, shape: tuple[int, ...], keep_prob: float) -> np.ndarray:
    """The documented mask: stream = h(h(step + seed_key) ^ site_key), u_j = h(j + stream) for j < m = ceil(n/2);
    element j is kept if u_j's high half, element m + j if its low half, as a 16-bit uniform with the top bit flipped,
    is below round(keep_prob * 2^16)."""
    n = int(np.prod(shape))
    with np.errstate(over="ignore"):
        stream = numpy_lowbias32(numpy_lowbias32(np.uint32(step) + np.uint32(seed_key)) ^ np.uint32(site_key))
        words = numpy_lowbias32(np.arange((n + 1) // 2, dtype=np.uint32) + stream)
    halves = np.concatenate([words >> np.uint32(16), words & np.uint32(0xFFFF)]) ^ np.uint32(0x8000)
    return (halves < round(keep_prob * 2 ** 16))[:n].reshape(shape)


class TwoSites(nn.Cell):
    def __init__(self, p: float) -> None:
        super().__init__()
        self.first = StepSeededDropout(p)
        self.second = StepSeededDropout(p)

    def construct(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.first(x), self.second(x)


def dropped(p: float, seed: int, steps: list[int], shape=(4, 8, 64),
            on_host: bool | None = None) -> list[tuple[np.ndarray, np.ndarray]]:
    """Both sites' outputs on an all-ones input, at each counter value in steps."""
    cell = TwoSites(p)
    step = Parameter(Tensor(0, ms.int32), name="step", requires_grad=False)
    assert seed_dropout(cell, step, seed, on_host=on_host) == 2
    cell.set_train()
    outputs = []
    for value in steps:
        step.set_data(Tensor(value, ms.int32))
        outputs.append(tuple(o.asnumpy() for o in cell(Tensor(np.ones(shape, np.float32)))))
    return outputs


def test_the_key_hash_is_lowbias32_and_a_bijection():
    words = np.array([0, 1, 2, 12345, 2 ** 31, 2 ** 32 - 1], np.uint64)
    assert [lowbias32(int(w)) for w in words] == numpy_lowbias32(words).tolist()
    assert len(np.unique(numpy_lowbias32(np.arange(1 << 20, dtype=np.uint32)))) == 1 << 20


@pytest.mark.parametrize("on_host", [False, True], ids=["MindSpore ops", "numpy kernel"])
def test_masks_equal_the_numpy_reference_and_scale_kept_values(on_host):
    """Both kernels (MindSpore ops for GPU and Ascend, numpy on CPU) draw the documented bits."""
    seed, steps = 1234, [0, 7, 2 ** 31 - 1]
    seed_key = lowbias32(lowbias32(seed) ^ 0)
    for step, outputs in zip(steps, dropped(0.1, seed, steps, shape=(3, 5, 7),  # odd: the last word half used
                                            on_host=on_host)):
        for site, output in enumerate(outputs):
            expected = numpy_keep_mask(seed_key, lowbias32(site + 0x9E3779B9), step, output.shape, 0.9)
            np.testing.assert_array_equal(output != 0, expected)
            np.testing.assert_allclose(output[expected], np.float32(2 ** 16 / round(0.9 * 2 ** 16)))


def test_keep_rate_is_keep_prob_and_masks_differ_between_steps_sites_and_seeds():
    (a0, b0), (a1, _) = dropped(0.1, 0, [0, 1], shape=(16, 4, 128, 128))
    (c0, _), = dropped(0.1, 1, [0], shape=(16, 4, 128, 128))
    n = a0.size
    for output in (a0, b0, a1, c0):
        assert abs((output != 0).mean() - 0.9) < 4 * np.sqrt(0.09 / n)  # within 4 standard deviations
    for x, y in ((a0, a1), (a0, b0), (a0, c0)):
        agree = ((x != 0) == (y != 0)).mean()
        assert abs(agree - 0.82) < 0.01  # independent masks agree on 0.9^2 + 0.1^2 of the elements


def test_dropout_is_identity_in_evaluation_and_without_probability():
    x = Tensor(np.random.RandomState(0).randn(3, 5).astype(np.float32))
    for p, training in ((0.1, False), (0.0, True)):
        cell = StepSeededDropout(p)
        cell.set_train(training)
        np.testing.assert_array_equal(cell(x).asnumpy(), x.asnumpy())
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        StepSeededDropout(1.0)


def test_the_counter_is_the_train_cells_and_not_a_model_parameter():
    network = BertClassifierWithLoss(BertConfig(seq_length=16, **WITH_DROPOUT), num_labels=3)
    names = [p.name for p in network.get_parameters()]
    cell = TrainOneStepCell(network, create_optimizer("Lamb", OptimizerSettings(warmup_steps=0),
                                                      network.trainable_params(), decay_steps=10))
    assert [p.name for p in network.get_parameters()] == names
    assert "dropout_step" in {p.name for p in cell.get_parameters()} and "dropout_step" not in names
    sites = [c for _, c in network.cells_and_names() if isinstance(c, StepSeededDropout)]
    assert len(sites) == 1 + 3 * 2 + 1  # embeddings, per layer attention probs / self-output / output, classifier
    assert len({c.site_key for c in sites}) == len(sites)
    assert all(c.host_kernel is not None for c in sites)  # on CPU, the numpy kernel (the ops' memory cost there)


def batches(count: int) -> list[list[Tensor]]:
    return [[Tensor(b[name]) for name in RECORD_ORDER]
            for b in (make_batch(seed, 4, 16, 99, [16, 12, 9, 16], 3) for seed in range(count))]


def pretraining_cell(accumulation_steps: int, config: BertConfig | None = None):
    if config is None:
        config = BertConfig(seq_length=16, **WITH_DROPOUT)
    ms.set_seed(0)  # the same initial weights for every run
    network = BertNetworkWithLoss(config)
    optimizer = create_optimizer("Lamb", OptimizerSettings(learning_rate=1e-3, warmup_steps=0),
                                 network.trainable_params(), decay_steps=100)
    cell = TrainOneStepCell(network, optimizer, LossScaleSettings(2.0 ** 10, 2, 3), 1.0, accumulation_steps,
                            dropout_seed=42)
    cell.set_train()
    return cell, network


@pytest.mark.slow
@pytest.mark.parametrize("accumulation_steps", [1, 2])
def test_a_resumed_run_ends_bit_identical_to_an_uninterrupted_one(tmp_path, accumulation_steps):
    data, kill_after = batches(6), 3
    cell, network = pretraining_cell(accumulation_steps)
    losses = [float(cell(*batch)[0].asnumpy()) for batch in data[:kill_after]]
    # What a run killed after this step leaves (with accumulation: mid-window, gradients pending). The same cell
    # then goes on uninterrupted: a killed run up to here would be the same computation (one graph build fewer).
    write_checkpoint(cell, tmp_path / "killed.ckpt")
    losses += [float(cell(*batch)[0].asnumpy()) for batch in data[kill_after:]]
    expected = {p.name: p.asnumpy() for p in network.get_parameters()}
    del cell
    resumed, network = pretraining_cell(accumulation_steps)
    load_into(resumed, read_checkpoint(tmp_path / "killed.ckpt"), "killed run", allow_missing=TRAIN_CELL_ONLY)
    assert int(resumed.dropout_step.asnumpy()) == kill_after
    resumed_losses = [float(resumed(*batch)[0].asnumpy()) for batch in data[kill_after:]]
    assert resumed_losses == losses[kill_after:]
    for parameter in network.get_parameters():
        np.testing.assert_array_equal(parameter.asnumpy(), expected[parameter.name], err_msg=parameter.name)


def test_dropout_changes_the_loss_and_each_step_draws_new_masks():
    batch = batches(1)[0]
    config = BertConfig(seq_length=16, **WITH_DROPOUT)
    with_dropout, _ = pretraining_cell(1, config)
    without, _ = pretraining_cell(1, config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0))
    first = float(with_dropout(*batch)[0].asnumpy())
    assert first != float(without(*batch)[0].asnumpy())  # same initial weights and batch
    # The same network outside a train cell, its counter set by hand: at 0 it gives the train cell's first loss,
    # so a step reads the counter before it adds 1; other counters give other masks.
    ms.set_seed(0)
    network = BertNetworkWithLoss(config)
    step = Parameter(Tensor(0, ms.int32), name="step", requires_grad=False)
    seed_dropout(network, step, 42)
    network.set_train()
    losses = []
    for value in range(3):
        step.set_data(Tensor(value, ms.int32))
        losses.append(float(network(*batch).asnumpy()))
    assert losses[0] == first and len(set(losses)) == 3
