"""BertModel: embeddings, self-attention (absolute or NEZHA relative positions), encoder and pooler.

Class and parameter names follow HuggingFace's modeling_bert.py (BertEmbeddings, BertSelfAttention, ...,
`bert.encoder.layer.0.attention.self.query.weight`), so checkpoints convert one-to-one.

Mixed precision: matrix multiplications run in config.compute_type; the residual stream, LayerNorm, softmax
and everything after the heads stay in float32, so float16 compute keeps float32 statistics.
"""
from __future__ import annotations

import math

import mindspore as ms
import numpy as np
from mindspore import Parameter, Tensor, nn, ops
from mindspore.common.initializer import TruncatedNormal, initializer

from src.config import BertConfig
from src.model.kernels.activations import activation
from src.model.kernels.dropout import StepSeededDropout
from src.model.kernels.layer_norm import LayerNorm
from src.model.kernels.linear import Dense, ms_dtype

# Added to attention scores at padding positions: exp(-10000) is 0 in float32, as in Google's BERT.
MASK_ADDER = -10000.0


class Embedding(nn.Cell):
    """A lookup table [num_embeddings, dim]."""

    def __init__(self, num_embeddings: int, dim: int, initializer_range: float, dtype: str = "float32") -> None:
        super().__init__()
        self.weight = Parameter(initializer(TruncatedNormal(initializer_range), [num_embeddings, dim],
                                            ms_dtype(dtype)), name="weight")

    def construct(self, ids: Tensor) -> Tensor:
        return ops.gather(self.weight, ids, 0).astype(ms.float32)


class BertEmbeddings(nn.Cell):
    """word + token type (+ absolute position, unless relative positions are used), LayerNorm, dropout."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.word_embeddings = Embedding(config.vocab_size, config.hidden_size, config.initializer_range,
                                         config.dtype)
        self.use_position_embeddings = not config.use_relative_positions
        if self.use_position_embeddings:
            self.position_embeddings = Embedding(config.max_position_embeddings, config.hidden_size,
                                                 config.initializer_range, config.dtype)
            self.position_ids = Tensor(np.arange(config.max_position_embeddings, dtype=np.int32)[None, :])
        self.token_type_embeddings = Embedding(config.type_vocab_size, config.hidden_size,
                                               config.initializer_range, config.dtype)
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = StepSeededDropout(config.hidden_dropout_prob)

    def construct(self, input_ids: Tensor, token_type_ids: Tensor) -> Tensor:
        embeddings = self.word_embeddings(input_ids) + self.token_type_embeddings(token_type_ids)
        if self.use_position_embeddings:
            seq_length = input_ids.shape[1]
            embeddings = embeddings + self.position_embeddings(self.position_ids[:, :seq_length])
        return self.dropout(self.LayerNorm(embeddings))  # [batch, seq, hidden]


def relative_position_index(length: int, max_relative_position: int) -> np.ndarray:
    """[length, length] table of clip(j - i, -M, M) + M: the row of the relative-position table for query i, key j."""
    positions = np.arange(length)
    distance = positions[None, :] - positions[:, None]
    return (np.clip(distance, -max_relative_position, max_relative_position) + max_relative_position).astype(np.int32)


def sinusoidal_table(num_positions: int, depth: int) -> np.ndarray:
    """NEZHA's functional encoding: row p is sin/cos of p / 10000^(2k/depth) (p is the shifted distance)."""
    position = np.arange(num_positions, dtype=np.float32)[:, None]
    div_term = np.exp(np.arange(0, depth, 2, dtype=np.float32) * (-math.log(10000.0) / depth))
    table = np.zeros((num_positions, depth), dtype=np.float32)
    table[:, 0::2] = np.sin(position * div_term)
    table[:, 1::2] = np.cos(position * div_term)
    return table


class RelativePositionEmbeddings(nn.Cell):
    """Per-pair relative-position vectors [seq, seq, head_size], shared by keys and values.

    "learned": a trainable table `weight` of 2M+1 rows (the MindSpore model zoo's NEZHA).
    "functional": the fixed sinusoidal table of the NEZHA paper; not a parameter.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        num_positions = 2 * config.max_relative_position + 1
        self.learned = config.relative_position_type == "learned"
        if self.learned:
            self.weight = Parameter(initializer(TruncatedNormal(config.initializer_range),
                                                [num_positions, config.head_size], ms.float32), name="weight")
        else:
            self.table = Tensor(sinusoidal_table(num_positions, config.head_size))
        self.index = Tensor(relative_position_index(config.max_position_embeddings, config.max_relative_position))

    def construct(self, seq_length: int) -> Tensor:
        table = self.weight if self.learned else self.table
        return ops.gather(table, self.index[:seq_length, :seq_length], 0)  # [seq, seq, head_size]


class BertSelfAttention(nn.Cell):
    """Multi-head scaled dot-product attention with an additive mask; optionally NEZHA relative positions:

        scores_ij  = (q_i . k_j + q_i . r_ij) / sqrt(d)
        context_i  = sum_j p_ij (v_j + r_ij)
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.num_heads = config.num_attention_heads
        self.head_size = config.head_size
        self.scale = 1.0 / math.sqrt(self.head_size)
        self.compute_type = ms_dtype(config.compute_type)
        hidden = config.hidden_size
        self.query = Dense(hidden, hidden, config.initializer_range, config.compute_type)
        self.key = Dense(hidden, hidden, config.initializer_range, config.compute_type)
        self.value = Dense(hidden, hidden, config.initializer_range, config.compute_type)
        self.dropout = StepSeededDropout(config.attention_probs_dropout_prob)
        self.matmul_transposed = ops.BatchMatMul(transpose_b=True)
        self.matmul = ops.BatchMatMul()
        self.use_relative_positions = config.use_relative_positions
        if self.use_relative_positions:
            self.relative_positions = RelativePositionEmbeddings(config)

    def split_heads(self, x: Tensor) -> Tensor:
        batch, seq, _ = x.shape
        return x.reshape(batch, seq, self.num_heads, self.head_size).transpose(0, 2, 1, 3)  # [b, heads, seq, d]

    def construct(self, hidden_states: Tensor, attention_bias: Tensor) -> Tensor:
        batch, seq, hidden = hidden_states.shape
        query = self.split_heads(self.query(hidden_states))
        key = self.split_heads(self.key(hidden_states))
        value = self.split_heads(self.value(hidden_states))
        scores = self.matmul_transposed(query, key)  # [b, heads, seq, seq]
        if self.use_relative_positions:
            relations = self.relative_positions(seq).astype(self.compute_type)  # [seq, seq, d]
            query_by_position = query.transpose(2, 0, 1, 3).reshape(seq, batch * self.num_heads, self.head_size)
            key_position_scores = self.matmul_transposed(query_by_position, relations)  # [seq, b*heads, seq]
            scores = scores + key_position_scores.reshape(seq, batch, self.num_heads, seq).transpose(1, 2, 0, 3)
        scores = scores.astype(ms.float32) * self.scale + attention_bias
        probs = self.dropout(ops.softmax(scores, axis=-1)).astype(self.compute_type)
        context = self.matmul(probs, value)  # [b, heads, seq, d]
        if self.use_relative_positions:
            probs_by_position = probs.transpose(2, 0, 1, 3).reshape(seq, batch * self.num_heads, seq)
            value_position = self.matmul(probs_by_position, relations)  # [seq, b*heads, d]
            context = context + value_position.reshape(seq, batch, self.num_heads, self.head_size).transpose(1, 2, 0, 3)
        return context.transpose(0, 2, 1, 3).reshape(batch, seq, hidden)


class BertSelfOutput(nn.Cell):
    """Projection of the attention context, dropout, residual, LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = Dense(config.hidden_size, config.hidden_size, config.initializer_range, config.compute_type)
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = StepSeededDropout(config.hidden_dropout_prob)

    def construct(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)).astype(ms.float32) + input_tensor)


class BertAttention(nn.Cell):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.self = BertSelfAttention(config)
        self.output = BertSelfOutput(config)

    def construct(self, hidden_states: Tensor, attention_bias: Tensor) -> Tensor:
        return self.output(self.self(hidden_states, attention_bias), hidden_states)


class BertIntermediate(nn.Cell):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = Dense(config.hidden_size, config.intermediate_size, config.initializer_range,
                           config.compute_type)
        self.intermediate_act_fn = activation(config.hidden_act)

    def construct(self, hidden_states: Tensor) -> Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class BertOutput(nn.Cell):
    """Feed-forward down-projection, dropout, residual, LayerNorm."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = Dense(config.intermediate_size, config.hidden_size, config.initializer_range,
                           config.compute_type)
        self.LayerNorm = LayerNorm(config.hidden_size, config.layer_norm_eps)
        self.dropout = StepSeededDropout(config.hidden_dropout_prob)

    def construct(self, hidden_states: Tensor, input_tensor: Tensor) -> Tensor:
        return self.LayerNorm(self.dropout(self.dense(hidden_states)).astype(ms.float32) + input_tensor)


class BertLayer(nn.Cell):
    """One post-LN transformer layer: attention block, then feed-forward block."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.attention = BertAttention(config)
        self.intermediate = BertIntermediate(config)
        self.output = BertOutput(config)

    def construct(self, hidden_states: Tensor, attention_bias: Tensor) -> Tensor:
        attention_output = self.attention(hidden_states, attention_bias)
        return self.output(self.intermediate(attention_output), attention_output)


class BertEncoder(nn.Cell):
    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.layer = nn.CellList([BertLayer(config) for _ in range(config.num_hidden_layers)])

    def construct(self, hidden_states: Tensor, attention_bias: Tensor) -> Tensor:
        for layer in self.layer:
            hidden_states = layer(hidden_states, attention_bias)
        return hidden_states


class BertPooler(nn.Cell):
    """tanh(W h_[CLS] + b): the sentence representation the NSP and classification heads read."""

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.dense = Dense(config.hidden_size, config.hidden_size, config.initializer_range, config.compute_type)

    def construct(self, sequence_output: Tensor) -> Tensor:
        return ops.tanh(self.dense(sequence_output[:, 0]).astype(ms.float32))


class BertModel(nn.Cell):
    """BERT / NEZHA encoder.

    Inputs: input_ids, token_type_ids, input_mask, each int32 [batch, seq] (mask 1 = real token, 0 = padding).
    Outputs: sequence_output float32 [batch, seq, hidden], pooled_output float32 [batch, hidden].

    Dropout is active only in training mode (cell.set_train(True)); its masks follow the step counter of the
    train-one-step cell (StepSeededDropout), so a resumed run repeats them.
    """

    def __init__(self, config: BertConfig) -> None:
        super().__init__()
        self.config = config
        self.embeddings = BertEmbeddings(config)
        self.encoder = BertEncoder(config)
        self.pooler = BertPooler(config)

    def construct(self, input_ids: Tensor, token_type_ids: Tensor, input_mask: Tensor) -> tuple[Tensor, Tensor]:
        # [batch, heads, seq, seq]: 0 where attended, MASK_ADDER at padding keys. Broadcast once here, not in each
        # layer: on CPU each broadcasting add kept scores-sized buffers for backward (docs/cpu_workarounds.md).
        batch, seq = input_ids.shape
        attention_bias = ops.broadcast_to((1.0 - input_mask.astype(ms.float32))[:, None, None, :] * MASK_ADDER,
                                          (batch, self.config.num_attention_heads, seq, seq))
        sequence_output = self.encoder(self.embeddings(input_ids, token_type_ids), attention_bias)
        return sequence_output, self.pooler(sequence_output)
