"""Finetuning heads on BertModel, named as HuggingFace's BertFor* classes (bert, classifier), so a pretraining
checkpoint loads into `bert.*` and only the head starts fresh.

Each task has a model (returns logits) and a `...WithLoss` subclass (same parameter names) whose inputs are the
record columns in order and whose output is the scalar loss that the shared TrainOneStepCell trains.
"""
from __future__ import annotations

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from src.config import BertConfig
from src.model.bert import BertModel
from src.model.crf import CRF
from src.model.kernels.dropout import StepSeededDropout
from src.model.kernels.linear import Dense


class BertForSequenceClassification(nn.Cell):
    """Pooled [CLS] output (or the mean of the token outputs, pooling "mean") -> dropout -> linear:
    logits [batch, num_labels]; num_labels 1 is a regression."""

    def __init__(self, config: BertConfig, num_labels: int, pooling: str = "cls") -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.dropout = StepSeededDropout(config.hidden_dropout_prob)
        self.classifier = Dense(config.hidden_size, num_labels, config.initializer_range, config.compute_type)
        self.num_labels = num_labels
        self.mean_pooling = pooling == "mean"

    def construct(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor) -> Tensor:
        sequence_output, pooled_output = self.bert(input_ids, segment_ids, input_mask)
        if self.mean_pooling:
            mask = input_mask.astype(sequence_output.dtype)[:, :, None]
            pooled_output = (sequence_output * mask).sum(axis=1) / mask.sum(axis=1)
        return self.classifier(self.dropout(pooled_output)).astype(ms.float32)


class BertClassifierWithLoss(BertForSequenceClassification):
    """Cross-entropy over the classes, or mean squared error for a regression (num_labels 1)."""

    def construct(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor, label_ids: Tensor) -> Tensor:
        logits = super().construct(input_ids, input_mask, segment_ids)
        if self.num_labels == 1:
            return ops.square(logits.reshape(-1) - label_ids.reshape(-1).astype(ms.float32)).mean()
        log_probs = ops.log_softmax(logits, axis=-1)
        labels = label_ids.reshape(-1, 1).astype(ms.int32)
        return -ops.gather_elements(log_probs, 1, labels).mean()


class BertForTokenClassification(nn.Cell):
    """Sequence output -> dropout -> linear: per-token tag scores [batch, seq, num_labels] (CRF emissions)."""

    def __init__(self, config: BertConfig, num_labels: int, use_crf: bool = False) -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.dropout = StepSeededDropout(config.hidden_dropout_prob)
        self.classifier = Dense(config.hidden_size, num_labels, config.initializer_range, config.compute_type)
        self.crf = CRF(num_labels) if use_crf else None

    def construct(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor) -> Tensor:
        sequence_output, _ = self.bert(input_ids, segment_ids, input_mask)
        return self.classifier(self.dropout(sequence_output)).astype(ms.float32)


class BertTaggerWithLoss(BertForTokenClassification):
    """CRF negative log-likelihood, or token cross-entropy averaged over real (unpadded) tokens."""

    def construct(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor, label_ids: Tensor) -> Tensor:
        emissions = super().construct(input_ids, input_mask, segment_ids)
        if self.crf is not None:
            return self.crf(emissions, label_ids, input_mask)
        log_probs = ops.log_softmax(emissions, axis=-1)
        nll = -ops.gather_elements(log_probs, 2, label_ids.astype(ms.int32)[:, :, None]).squeeze(-1)
        mask = input_mask.astype(ms.float32)
        return (nll * mask).sum() / mask.sum()


class BertTaggerDecoder(BertForTokenClassification):
    """For evaluation: the tag scores [batch, seq, num_labels], or with a CRF its Viterbi final scores and
    backpointers (src.model.crf.backtrack turns them into paths)."""

    def construct(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor):
        emissions = super().construct(input_ids, input_mask, segment_ids)
        if self.crf is not None:
            return self.crf.viterbi(emissions, input_mask)
        return emissions


class BertForQuestionAnswering(nn.Cell):
    """Sequence output -> linear to 2: start and end logits [batch, seq] of the answer span (SQuAD)."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.qa_outputs = Dense(config.hidden_size, 2, config.initializer_range, config.compute_type)

    def construct(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor) -> tuple[Tensor, Tensor]:
        sequence_output, _ = self.bert(input_ids, segment_ids, input_mask)
        logits = self.qa_outputs(sequence_output).astype(ms.float32)  # [batch, seq, 2]
        return logits[:, :, 0], logits[:, :, 1]


class BertSquadWithLoss(BertForQuestionAnswering):
    """Mean of the start and end cross-entropies over the sequence positions."""

    def construct(self, input_ids: Tensor, input_mask: Tensor, segment_ids: Tensor, start_positions: Tensor,
                  end_positions: Tensor) -> Tensor:
        start_logits, end_logits = super().construct(input_ids, input_mask, segment_ids)
        start_nll = -ops.gather_elements(ops.log_softmax(start_logits, axis=-1), 1,
                                         start_positions.reshape(-1, 1).astype(ms.int32))
        end_nll = -ops.gather_elements(ops.log_softmax(end_logits, axis=-1), 1,
                                       end_positions.reshape(-1, 1).astype(ms.int32))
        return (start_nll.mean() + end_nll.mean()) / 2


def numpy_outputs(outputs: Tensor | tuple[Tensor, ...]) -> list[np.ndarray]:
    """A cell's output (one tensor or a tuple) as a list of numpy arrays."""
    return [output.asnumpy() for output in (outputs if isinstance(outputs, tuple) else (outputs,))]
