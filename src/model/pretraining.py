"""Pretraining heads (masked LM tied to the word embeddings, next-sentence prediction) and their loss.

Names follow HuggingFace's BertForPreTraining: cls.predictions.transform.dense, cls.predictions.bias,
cls.seq_relationship. The MLM head is evaluated only at the masked positions (gathered first), as in
Google's run_pretraining.py: [batch * max_predictions, vocab] logits instead of [batch * seq, vocab].
"""
from __future__ import annotations

import mindspore as ms
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import initializer

from src.config import OBJECTIVES, BertConfig
from src.model.bert import BertModel
from src.model.kernels.activations import activation
from src.model.kernels.layer_norm import LayerNorm
from src.model.kernels.linear import Dense, ms_dtype


def gather_positions(sequence_output: Tensor, positions: Tensor) -> Tensor:
    """Rows of sequence_output [batch, seq, hidden] at positions [batch, n] -> [batch * n, hidden]."""
    batch, seq, hidden = sequence_output.shape
    offsets = (ops.arange(batch, dtype=ms.int32) * seq)[:, None]
    flat_positions = (positions.astype(ms.int32) + offsets).reshape(-1)
    return ops.gather(sequence_output.reshape(batch * seq, hidden), flat_positions, 0)


class BertPredictionHeadTransform(nn.Cell):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = Dense(config.hidden_size, config.hidden_size, config.initializer_range, config.compute_type)
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.transform_act_fn = activation(config.hidden_act)

    def construct(self, hidden_states: Tensor) -> Tensor:
        return self.LayerNorm(self.transform_act_fn(self.dense(hidden_states)))


class BertLMPredictionHead(nn.Cell):
    """transform, then a decoder whose weight is the word-embedding table and whose bias is its own."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.transform = BertPredictionHeadTransform(config)
        self.bias = Parameter(initializer("zeros", [config.vocab_size], ms.float32), name="bias")
        self.compute_type = ms_dtype(config.compute_type)
        self.matmul_transposed = ops.MatMul(transpose_b=True)  # see src/model/kernels/linear.py: not ops.matmul

    def construct(self, hidden_states: Tensor, word_embeddings: Tensor) -> Tensor:
        hidden_states = self.transform(hidden_states).astype(self.compute_type)
        logits = self.matmul_transposed(hidden_states, word_embeddings.astype(self.compute_type))
        return logits.astype(ms.float32) + self.bias  # [n, vocab]


class BertPreTrainingHeads(nn.Cell):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.predictions = BertLMPredictionHead(config)
        self.seq_relationship = Dense(config.hidden_size, 2, config.initializer_range, config.compute_type)

    def construct(self, sequence_output: Tensor, pooled_output: Tensor, word_embeddings: Tensor,
                  masked_lm_positions: Tensor) -> tuple[Tensor, Tensor]:
        masked_output = gather_positions(sequence_output, masked_lm_positions)
        prediction_scores = self.predictions(masked_output, word_embeddings)
        seq_relationship_score = self.seq_relationship(pooled_output).astype(ms.float32)
        return prediction_scores, seq_relationship_score


class BertForPreTraining(nn.Cell):
    """BertModel + pretraining heads.

    Returns MLM logits float32 [batch * max_predictions, vocab] and NSP logits float32 [batch, 2].
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.bert = BertModel(config)
        self.cls = BertPreTrainingHeads(config)

    def construct(self, input_ids: Tensor, input_mask: Tensor, token_type_ids: Tensor,
                  masked_lm_positions: Tensor) -> tuple[Tensor, Tensor]:
        sequence_output, pooled_output = self.bert(input_ids, token_type_ids, input_mask)
        return self.cls(sequence_output, pooled_output, self.bert.embeddings.word_embeddings.weight,
                        masked_lm_positions)


def masked_lm_loss(prediction_scores: Tensor, masked_lm_ids: Tensor, masked_lm_weights: Tensor) -> Tensor:
    """sum(w * nll) / (sum(w) + 1e-5) over the masked positions [batch * max_predictions]; masked_lm_weights is
    0 for the padding slots of masked_lm_positions, so they do not count."""
    mlm_log_probs = ops.log_softmax(prediction_scores, axis=-1)
    mlm_nll = -ops.gather_elements(mlm_log_probs, 1, masked_lm_ids.reshape(-1, 1).astype(ms.int32)).reshape(-1)
    weights = masked_lm_weights.reshape(-1).astype(ms.float32)
    return (mlm_nll * weights).sum() / (weights.sum() + 1e-5)


def pretraining_loss(prediction_scores: Tensor, seq_relationship_score: Tensor, masked_lm_ids: Tensor,
                     masked_lm_weights: Tensor, next_sentence_labels: Tensor) -> Tensor:
    """The model zoo's loss: masked_lm_loss plus the mean NSP nll over the batch."""
    nsp_log_probs = ops.log_softmax(seq_relationship_score, axis=-1)
    nsp_nll = -ops.gather_elements(nsp_log_probs, 1, next_sentence_labels.reshape(-1, 1).astype(ms.int32))
    return masked_lm_loss(prediction_scores, masked_lm_ids, masked_lm_weights) + nsp_nll.mean()


class BertNetworkWithLoss(BertForPreTraining):
    """Pretraining network returning the scalar loss; inputs in the order of the pretraining records.

    A subclass rather than a wrapper, so its parameter names are those of BertForPreTraining. objective "mlm"
    drops the NSP term (Cramming; RoBERTa): the loss is masked_lm_loss alone, and the pooler and NSP head, which
    it no longer reaches, are left out of training (requires_grad False: a decaying optimizer would otherwise
    shrink them towards zero on zero gradients) but kept in the checkpoints at their initial values.
    """

    def __init__(self, config: BertConfig, objective: str = "mlm_nsp") -> None:
        super().__init__(config)
        if objective not in OBJECTIVES:
            raise ValueError(f"objective '{objective}' is not one of {', '.join(OBJECTIVES)}")
        self.next_sentence = objective == "mlm_nsp"
        if not self.next_sentence:
            for parameter in (*self.bert.pooler.get_parameters(), *self.cls.seq_relationship.get_parameters()):
                parameter.requires_grad = False

    def construct(self, input_ids: Tensor, input_mask: Tensor, token_type_ids: Tensor, next_sentence_labels: Tensor,
                  masked_lm_positions: Tensor, masked_lm_ids: Tensor, masked_lm_weights: Tensor) -> Tensor:
        if not self.next_sentence:  # the MLM head alone: the pooler and NSP head are not computed
            sequence_output, _ = self.bert(input_ids, token_type_ids, input_mask)
            prediction_scores = self.cls.predictions(gather_positions(sequence_output, masked_lm_positions),
                                                     self.bert.embeddings.word_embeddings.weight)
            return masked_lm_loss(prediction_scores, masked_lm_ids, masked_lm_weights)
        prediction_scores, seq_relationship_score = super().construct(input_ids, input_mask, token_type_ids,
                                                                      masked_lm_positions)
        return pretraining_loss(prediction_scores, seq_relationship_score, masked_lm_ids, masked_lm_weights,
                                next_sentence_labels)


class BertPretrainingAccuracy(BertForPreTraining):
    """Counts for MLM and NSP accuracy over one batch of pretraining records (same inputs as the loss network):
    (masked tokens predicted right, masked tokens, NSP labels predicted right, sequences).

    Padding slots of masked_lm_positions (weight 0) do not count. Sums, not means, so batches add up exactly.
    """

    def construct(self, input_ids: Tensor, input_mask: Tensor, token_type_ids: Tensor, next_sentence_labels: Tensor,
                  masked_lm_positions: Tensor, masked_lm_ids: Tensor,
                  masked_lm_weights: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        prediction_scores, seq_relationship_score = super().construct(input_ids, input_mask, token_type_ids,
                                                                      masked_lm_positions)
        weights = masked_lm_weights.reshape(-1).astype(ms.float32)
        mlm_hits = ops.equal(prediction_scores.argmax(-1).astype(ms.int32), masked_lm_ids.reshape(-1).astype(ms.int32))
        nsp_hits = ops.equal(seq_relationship_score.argmax(-1).astype(ms.int32),
                             next_sentence_labels.reshape(-1).astype(ms.int32))
        return ((mlm_hits.astype(ms.float32) * weights).sum(), weights.sum(),
                nsp_hits.astype(ms.float32).sum(), ops.scalar_to_tensor(nsp_hits.shape[0], ms.float32))
