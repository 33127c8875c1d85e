"""Linear-chain CRF for token tagging: the negative log-likelihood by the forward algorithm, Viterbi decoding.

Batched and masked: sequences of any length in a padded batch (mask 1 on real tokens, left-aligned, the first
position always real -- [CLS]), any batch size. The model zoo's CRF fixed both at construction and ignored the
mask. Loops run over the sequence positions of the padded batch; padding positions carry the state unchanged.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import Uniform, initializer


class CRF(nn.Cell):
    """transitions[i, j]: score of tag j following tag i; start/end_transitions: of a path starting/ending at a tag."""

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.num_tags = num_tags
        self.transitions = Parameter(initializer(Uniform(0.1), [num_tags, num_tags], ms.float32), name="transitions")
        self.start_transitions = Parameter(initializer(Uniform(0.1), [num_tags], ms.float32), name="start_transitions")
        self.end_transitions = Parameter(initializer(Uniform(0.1), [num_tags], ms.float32), name="end_transitions")

    def path_score(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Score of the given tag paths: emissions [batch, seq, tags], tags and mask [batch, seq] -> [batch]."""
        mask = mask.astype(ms.float32)
        tags = tags.astype(ms.int32)
        emitted = ops.gather_elements(emissions, 2, tags[:, :, None]).squeeze(-1) * mask  # [batch, seq]
        transitions = self.transitions[tags[:, :-1], tags[:, 1:]] * mask[:, 1:]  # [batch, seq - 1]
        last_index = mask.sum(1).astype(ms.int32) - 1
        last_tags = ops.gather_elements(tags, 1, last_index[:, None]).squeeze(-1)
        return (self.start_transitions[tags[:, 0]] + emitted.sum(1) + transitions.sum(1)
                + self.end_transitions[last_tags])

    def log_partition(self, emissions: Tensor, mask: Tensor) -> Tensor:
        """log of the sum over all tag paths of exp(score), by the forward algorithm -> [batch]."""
        alpha = self.start_transitions + emissions[:, 0]  # [batch, tags]
        for position in range(1, emissions.shape[1]):
            scores = alpha[:, :, None] + self.transitions[None] + emissions[:, position][:, None, :]
            next_alpha = ops.logsumexp(scores, 1)  # [batch, tags]
            alpha = ops.select(mask[:, position][:, None].astype(ms.bool_), next_alpha, alpha)
        return ops.logsumexp(alpha + self.end_transitions, 1)

    def construct(self, emissions: Tensor, tags: Tensor, mask: Tensor) -> Tensor:
        """Mean negative log-likelihood of the gold tags over the batch."""
        emissions = emissions.astype(ms.float32)
        return (self.log_partition(emissions, mask) - self.path_score(emissions, tags, mask)).mean()

    def viterbi(self, emissions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        """Best final scores per tag [batch, tags] and backpointers [batch, seq, tags]; decode with backtrack()."""
        emissions = emissions.astype(ms.float32)
        score = self.start_transitions + emissions[:, 0]
        backpointers = [ops.zeros(score.shape, ms.int32)]
        for position in range(1, emissions.shape[1]):
            candidates = score[:, :, None] + self.transitions[None]  # [batch, previous tag, tag]
            best_previous = ops.cast(ops.argmax(candidates, 1), ms.int32)
            next_score = ops.amax(candidates, 1) + emissions[:, position]
            keep = mask[:, position][:, None].astype(ms.bool_)
            score = ops.select(keep, next_score, score)  # padding keeps the score; backtrack() never reads it
            backpointers.append(best_previous)
        return score + self.end_transitions, ops.stack(backpointers, axis=1)


def backtrack(final_scores: np.ndarray, backpointers: np.ndarray, lengths: np.ndarray) -> list[list[int]]:
    """Viterbi paths from CRF.viterbi's outputs: one list of `length` tags per sequence."""
    paths = []
    for scores, pointers, length in zip(final_scores, backpointers, lengths):
        tag = int(scores.argmax())
        path = [tag]
        for position in range(int(length) - 1, 0, -1):
            tag = int(pointers[position, tag])
            path.append(tag)
        paths.append(path[::-1])
    return paths


def viterbi_decode(emissions: np.ndarray, length: int, transitions: np.ndarray, start_transitions: np.ndarray,
                   end_transitions: np.ndarray) -> list[int]:
    """The best tag path of one sequence's first `length` emissions [seq, tags], in numpy: the decoding of
    CRF.viterbi + backtrack for a model whose tag scores come from an exported graph (predict.py)."""
    score = start_transitions + emissions[0]
    pointers = []
    for position in range(1, int(length)):
        candidates = score[:, None] + transitions  # [previous tag, tag]
        pointers.append(candidates.argmax(0))
        score = candidates.max(0) + emissions[position]
    tag = int((score + end_transitions).argmax())
    path = [tag]
    for best_previous in reversed(pointers):
        tag = int(best_previous[tag])
        path.append(tag)
    return path[::-1]
