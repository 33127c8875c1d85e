"""The CRF against brute force over every tag path, on short random padded batches."""
import itertools

import mindspore as ms
import numpy as np
import pytest
from mindspore import Tensor

from src.model.crf import CRF, backtrack


def brute_force(crf, emissions, tags, length):
    transitions, start, end = (p.asnumpy() for p in (crf.transitions, crf.start_transitions, crf.end_transitions))

    def score(path):
        return (start[path[0]] + end[path[-1]] + sum(emissions[i, t] for i, t in enumerate(path))
                + sum(transitions[a, b] for a, b in zip(path, path[1:])))

    paths = list(itertools.product(range(crf.num_tags), repeat=length))
    scores = np.array([score(p) for p in paths])
    log_z = np.log(np.exp(scores - scores.max()).sum()) + scores.max()
    return log_z - score(tuple(tags[:length])), list(paths[int(scores.argmax())])


@pytest.mark.parametrize("batch, seq, num_tags, lengths", [(3, 5, 3, [5, 3, 1]), (2, 4, 4, [2, 4]), (1, 6, 2, [6])])
def test_loss_and_viterbi_equal_brute_force_and_respect_the_mask(batch, seq, num_tags, lengths):
    ms.set_seed(batch + seq)
    crf = CRF(num_tags)
    rng = np.random.RandomState(seq)
    emissions = rng.randn(batch, seq, num_tags).astype(np.float32)
    tags = rng.randint(0, num_tags, (batch, seq)).astype(np.int32)
    mask = (np.arange(seq)[None] < np.array(lengths)[:, None]).astype(np.int32)
    # What lies under the padding must not matter.
    padded_emissions = np.where(mask[:, :, None] > 0, emissions, 50.0).astype(np.float32)
    padded_tags = np.where(mask > 0, tags, num_tags - 1).astype(np.int32)

    loss = crf(Tensor(padded_emissions), Tensor(padded_tags), Tensor(mask)).asnumpy()
    final, pointers = crf.viterbi(Tensor(padded_emissions), Tensor(mask))
    paths = backtrack(final.asnumpy(), pointers.asnumpy(), mask.sum(1))

    expected_nll, expected_paths = zip(*(brute_force(crf, emissions[b], tags[b], lengths[b]) for b in range(batch)))
    np.testing.assert_allclose(loss, np.mean(expected_nll), rtol=1e-5)
    assert paths == list(expected_paths)
    assert [len(p) for p in paths] == lengths


def test_loss_gradient_reaches_the_transitions():
    crf = CRF(3)
    emissions = Tensor(np.random.RandomState(0).randn(2, 4, 3).astype(np.float32))
    tags, mask = Tensor(np.zeros((2, 4), np.int32)), Tensor(np.ones((2, 4), np.int32))
    _, grads = ms.value_and_grad(crf, grad_position=None, weights=crf.trainable_params())(emissions, tags, mask)
    assert all(np.abs(g.asnumpy()).sum() > 0 for g in grads)
