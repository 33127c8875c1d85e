"""The task graph of a BERT or NEZHA model as ONNX, written node by node from the weights, in standard ONNX ops
that onnxruntime's transformer optimizer recognises; and that optimizer and dynamic int8 quantization on it.

Why not MindSpore's exporter: it has no Erf (GELU's erf became a 20-op polynomial), folds the linear layers into
Gemm over flattened rows with a Reshape on either side and writes fixed shapes only, so none of onnxruntime's
fusions matched (Attention, SkipLayerNormalization, Gelu: 0 of each on the tiny classifier). The graph here has
the layout those fusions look for:

    embeddings  Gather(word) + Gather(token type) + Gather(position; Slice of [0, max_positions) to the input's
                length) -> LayerNormalization
    mask        (1 - Cast(Unsqueeze(Unsqueeze(input_mask)))) * -10000, added to the scores
    attention   MatMul + Add per projection; Reshape [0, 0, heads, head_size]; Transpose (keys [0, 2, 3, 1]);
                MatMul / sqrt(head_size) + mask; Softmax; MatMul; Transpose; Reshape [0, 0, hidden]
    residuals   MatMul + Add, Add of the block's input, LayerNormalization
    GELU        x * (Erf(x / sqrt 2) + 1) * 0.5 (gelu); the tanh form (gelu_tanh); Relu

NEZHA's relative positions add q_i . r_ij to the scores and sum_j p_ij r_ij to the context, r = Gather(table,
Slice of the [max_positions, max_positions] index table): no onnxruntime fusion covers that attention, so only
its layer norms and GELUs fuse. Inputs are int32 [batch, seq]; batch and seq are dynamic unless fixed.
"""
from __future__ import annotations

import collections
import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from src.config import BertConfig
from src.model.bert import MASK_ADDER, relative_position_index, sinusoidal_table
from src.tasks.task_card import TaskCard

OPSET = 17  # LayerNormalization is a standard op from 17
IR_VERSION = 8
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
FUSED_OPS = ("EmbedLayerNormalization", "Attention", "SkipLayerNormalization", "BiasGelu", "Gelu", "FastGelu")


def output_names(task: str) -> tuple[str, ...]:
    """The graph's outputs for a task card's task ("encoder": a checkpoint without one)."""
    return {"classification": ("logits",), "ner": ("tag_scores",), "squad": ("start_logits", "end_logits"),
            "encoder": ("sequence_output", "pooled_output")}[task]


class _GraphBuilder:
    """Nodes and initializers of one graph; every node has one output, named after the node."""

    def __init__(self) -> None:
        self.nodes: list = []
        self.initializers: list = []
        self._names: collections.Counter = collections.Counter()
        self._constants: dict[str, np.ndarray] = {}

    def _name(self, hint: str) -> str:
        self._names[hint] += 1
        return f"{hint}_{self._names[hint]}" if self._names[hint] > 1 else hint

    def constant(self, name: str, value: np.ndarray | float | int | list) -> str:
        """An initializer (float: float32, int / list: int64); one per name, shared by the nodes using it."""
        from onnx import numpy_helper

        if isinstance(value, float):
            value = np.array(value, np.float32)
        elif isinstance(value, (int, list)):
            value = np.array(value, np.int64)
        if name in self._constants:
            assert np.array_equal(self._constants[name], value), name
            return name
        self._constants[name] = value
        self.initializers.append(numpy_helper.from_array(np.array(value, order="C"), name))  # 0-d stays 0-d
        return name

    def op(self, op_type: str, inputs: list[str], hint: str, **attributes) -> str:
        from onnx import helper

        name = self._name(hint)
        self.nodes.append(helper.make_node(op_type, inputs, [name], name=name, **attributes))
        return name


def _linear(graph: _GraphBuilder, x: str, weights: Mapping[str, np.ndarray], prefix: str) -> str:
    """x W^T + b for a Dense of the checkpoint ([out, in] weight) as MatMul + Add."""
    weight = graph.constant(f"{prefix}.weight", weights[f"{prefix}.weight"].astype(np.float32).T)
    bias = graph.constant(f"{prefix}.bias", weights[f"{prefix}.bias"].astype(np.float32))
    return graph.op("Add", [graph.op("MatMul", [x, weight], f"{prefix}/MatMul"), bias], f"{prefix}/Add")


def _layer_norm(graph: _GraphBuilder, x: str, weights: Mapping[str, np.ndarray], prefix: str, eps: float) -> str:
    scale = graph.constant(f"{prefix}.weight", weights[f"{prefix}.weight"].astype(np.float32))
    bias = graph.constant(f"{prefix}.bias", weights[f"{prefix}.bias"].astype(np.float32))
    return graph.op("LayerNormalization", [x, scale, bias], f"{prefix}/LayerNormalization", axis=-1, epsilon=eps)


def _activation(graph: _GraphBuilder, x: str, name: str, prefix: str) -> str:
    """The config's hidden_act in the op pattern onnxruntime fuses (Gelu / FastGelu, with the bias: BiasGelu)."""
    if name == "relu":
        return graph.op("Relu", [x], f"{prefix}/Relu")
    if name == "gelu":  # 0.5 x (1 + erf(x / sqrt 2))
        erf = graph.op("Erf", [graph.op("Div", [x, graph.constant("sqrt_2", float(math.sqrt(2.0)))],
                                        f"{prefix}/Div")], f"{prefix}/Erf")
        one_plus = graph.op("Add", [erf, graph.constant("one", 1.0)], f"{prefix}/Add")
        return graph.op("Mul", [graph.op("Mul", [x, one_plus], f"{prefix}/Mul"), graph.constant("half", 0.5)],
                        f"{prefix}/Mul_half")
    # gelu_tanh: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3)))
    cube = graph.op("Pow", [x, graph.constant("three", 3.0)], f"{prefix}/Pow")
    inner = graph.op("Add", [x, graph.op("Mul", [cube, graph.constant("gelu_cubic", 0.044715)], f"{prefix}/Mul_c")],
                     f"{prefix}/Add_c")
    tanh = graph.op("Tanh", [graph.op("Mul", [inner, graph.constant("sqrt_2_over_pi", math.sqrt(2.0 / math.pi))],
                                      f"{prefix}/Mul_s")], f"{prefix}/Tanh")
    one_plus = graph.op("Add", [tanh, graph.constant("one", 1.0)], f"{prefix}/Add")
    return graph.op("Mul", [graph.op("Mul", [x, graph.constant("half", 0.5)], f"{prefix}/Mul_half"), one_plus],
                    f"{prefix}/Mul")


def _relations(graph: _GraphBuilder, table: str, index: str, seq_2: str, prefix: str) -> tuple[str, str]:
    """NEZHA's per-pair vectors r [seq, seq, head_size] and their transpose [seq, head_size, seq]."""
    rows = graph.op("Slice", [index, graph.constant("zeros_2", [0, 0]), seq_2, graph.constant("axes_01", [0, 1])],
                    f"{prefix}/index")
    relations = graph.op("Gather", [table, rows], f"{prefix}/Gather", axis=0)
    return relations, graph.op("Transpose", [relations], f"{prefix}/Transpose", perm=[0, 2, 1])


def _self_attention(graph: _GraphBuilder, x: str, mask_bias: str, weights: Mapping[str, np.ndarray], prefix: str,
                    config: BertConfig, relations: tuple[str, str] | None) -> str:
    heads, head_size = config.num_attention_heads, config.head_size
    split = graph.constant("split_heads_shape", [0, 0, heads, head_size])

    def project(name: str, perm: list[int]) -> str:  # [b, seq, hidden] -> [b, heads, seq, d] (keys: [b, heads, d, seq])
        projected = _linear(graph, x, weights, f"{prefix}.{name}")
        return graph.op("Transpose", [graph.op("Reshape", [projected, split], f"{prefix}.{name}/Reshape")],
                        f"{prefix}.{name}/Transpose", perm=perm)

    query, key, value = project("query", [0, 2, 1, 3]), project("key", [0, 2, 3, 1]), project("value", [0, 2, 1, 3])
    scores = graph.op("MatMul", [query, key], f"{prefix}/MatMul_qk")  # [b, heads, seq, seq]
    if relations is not None:
        relations_by_key, relations_transposed = relations
        query_rows = graph.op("Unsqueeze", [query, graph.constant("axis_3", [3])], f"{prefix}/Unsqueeze_q")
        # [b, heads, seq, 1, d] @ [seq, d, seq] -> [b, heads, seq, 1, seq]: q_i . r_ij
        position_scores = graph.op("MatMul", [query_rows, relations_transposed], f"{prefix}/MatMul_qr")
        scores = graph.op("Add", [scores, graph.op("Squeeze", [position_scores, graph.constant("axis_3", [3])],
                                                   f"{prefix}/Squeeze_qr")], f"{prefix}/Add_qr")
    # Div, not Mul by the inverse: onnxruntime's mask match takes the Add's first Mul parent for the mask's
    scaled = graph.op("Div", [scores, graph.constant("sqrt_head_size", math.sqrt(head_size))], f"{prefix}/Div")
    probs = graph.op("Softmax", [graph.op("Add", [scaled, mask_bias], f"{prefix}/Add_mask")], f"{prefix}/Softmax",
                     axis=-1)
    context = graph.op("MatMul", [probs, value], f"{prefix}/MatMul_pv")  # [b, heads, seq, d]
    if relations is not None:
        probs_rows = graph.op("Unsqueeze", [probs, graph.constant("axis_3", [3])], f"{prefix}/Unsqueeze_p")
        # [b, heads, seq, 1, seq] @ [seq, seq, d] -> [b, heads, seq, 1, d]: sum_j p_ij r_ij
        position_context = graph.op("MatMul", [probs_rows, relations_by_key], f"{prefix}/MatMul_pr")
        context = graph.op("Add", [context, graph.op("Squeeze", [position_context, graph.constant("axis_3", [3])],
                                                     f"{prefix}/Squeeze_pr")], f"{prefix}/Add_pr")
    merged = graph.op("Transpose", [context], f"{prefix}/Transpose", perm=[0, 2, 1, 3])
    return graph.op("Reshape", [merged, graph.constant("merge_heads_shape", [0, 0, config.hidden_size])],
                    f"{prefix}/Reshape")


def _encoder(graph: _GraphBuilder, weights: Mapping[str, np.ndarray], config: BertConfig) -> str:
    """The embeddings and layers: sequence output [batch, seq, hidden]."""
    eps = config.layer_norm_eps

    def table(name: str) -> str:
        return graph.constant(name, weights[name].astype(np.float32))

    seq = graph.op("Gather", [graph.op("Shape", ["input_ids"], "input_shape"), graph.constant("one_index", 1)],
                   "seq_length", axis=0)
    seq_1 = graph.op("Unsqueeze", [seq, graph.constant("axis_0", [0])], "seq_length_1d")
    embeddings = graph.op("Add", [graph.op("Gather", [table("bert.embeddings.word_embeddings.weight"), "input_ids"],
                                           "word_embeddings", axis=0),
                                  graph.op("Gather", [table("bert.embeddings.token_type_embeddings.weight"),
                                                      "segment_ids"], "token_type_embeddings", axis=0)],
                          "embeddings/Add")
    if not config.use_relative_positions:
        all_positions = graph.constant("position_ids_table",
                                       np.arange(config.max_position_embeddings, dtype=np.int64)[None, :])
        position_ids = graph.op("Slice", [all_positions, graph.constant("axis_0", [0]), seq_1,
                                          graph.constant("axis_1", [1]), graph.constant("step_1", [1])],
                                "position_ids")  # [1, seq]
        embeddings = graph.op("Add", [embeddings, graph.op("Gather", [table("bert.embeddings.position_embeddings."
                                                                            "weight"), position_ids],
                                                           "position_embeddings", axis=0)], "embeddings/Add_position")
    hidden = _layer_norm(graph, embeddings, weights, "bert.embeddings.LayerNorm", eps)

    # [batch, 1, 1, seq]: 0 where attended, MASK_ADDER at padding keys
    mask = graph.op("Unsqueeze", [graph.op("Unsqueeze", ["input_mask", graph.constant("axis_1", [1])],
                                           "mask/Unsqueeze"), graph.constant("axis_2", [2])], "mask/Unsqueeze_2")
    mask = graph.op("Cast", [mask], "mask/Cast", to=1)
    mask_bias = graph.op("Mul", [graph.op("Sub", [graph.constant("one", 1.0), mask], "mask/Sub"),
                                 graph.constant("mask_adder", float(MASK_ADDER))], "mask/Mul")

    relations = index = seq_2 = None
    if config.use_relative_positions:
        index = graph.constant("relative_position_index", relative_position_index(
            config.max_position_embeddings, config.max_relative_position).astype(np.int64))
        seq_2 = graph.op("Concat", [seq_1, seq_1], "seq_length_2d", axis=0)
        if config.relative_position_type == "functional":  # one fixed table for every layer
            sinusoids = graph.constant("relative_position_table",
                                       sinusoidal_table(2 * config.max_relative_position + 1, config.head_size))
            relations = _relations(graph, sinusoids, index, seq_2, "relative_positions")
    for layer in range(config.num_hidden_layers):
        prefix = f"bert.encoder.layer.{layer}"
        layer_relations = relations
        if config.use_relative_positions and relations is None:  # learned: a table of each layer
            name = f"{prefix}.attention.self.relative_positions.weight"
            layer_relations = _relations(graph, table(name), index, seq_2, f"{prefix}.relative_positions")
        context = _self_attention(graph, hidden, mask_bias, weights, f"{prefix}.attention.self", config,
                                  layer_relations)
        attended = graph.op("Add", [_linear(graph, context, weights, f"{prefix}.attention.output.dense"), hidden],
                            f"{prefix}.attention.output/Add_residual")
        hidden = _layer_norm(graph, attended, weights, f"{prefix}.attention.output.LayerNorm", eps)
        intermediate = _activation(graph, _linear(graph, hidden, weights, f"{prefix}.intermediate.dense"),
                                   config.hidden_act, f"{prefix}.intermediate.act")
        output = graph.op("Add", [_linear(graph, intermediate, weights, f"{prefix}.output.dense"), hidden],
                          f"{prefix}.output/Add_residual")
        hidden = _layer_norm(graph, output, weights, f"{prefix}.output.LayerNorm", eps)
    return hidden


def _pooler(graph: _GraphBuilder, sequence: str, weights: Mapping[str, np.ndarray]) -> str:
    """tanh(W h_[CLS] + b): [batch, hidden]."""
    first = graph.op("Gather", [sequence, graph.constant("zero_index", 0)], "cls_token", axis=1)
    return graph.op("Tanh", [_linear(graph, first, weights, "bert.pooler.dense")], "bert.pooler/Tanh")


def _heads(graph: _GraphBuilder, task: str, sequence: str, weights: Mapping[str, np.ndarray],
           pooling: str) -> list[str]:
    """The task's outputs from the sequence output, as task_heads' classes compute them."""
    if task == "encoder":
        return [sequence, _pooler(graph, sequence, weights)]
    if task == "classification":
        if pooling == "mean":  # mean of the unpadded token outputs
            mask = graph.op("Unsqueeze", [graph.op("Cast", ["input_mask"], "pool/Cast", to=1),
                                          graph.constant("axis_2", [2])], "pool/Unsqueeze")  # [b, seq, 1]
            axis = graph.constant("axis_1", [1])
            total = graph.op("ReduceSum", [graph.op("Mul", [sequence, mask], "pool/Mul"), axis], "pool/ReduceSum",
                             keepdims=0)
            pooled = graph.op("Div", [total, graph.op("ReduceSum", [mask, axis], "pool/Count", keepdims=0)],
                              "pool/Div")
        else:
            pooled = _pooler(graph, sequence, weights)
        return [_linear(graph, pooled, weights, "classifier")]  # [b, classes]
    if task == "ner":
        return [_linear(graph, sequence, weights, "classifier")]  # [b, seq, tags]
    logits = _linear(graph, sequence, weights, "qa_outputs")  # [b, seq, 2]
    return [graph.op("Gather", [logits, graph.constant("zero_index", 0)], "start", axis=2),
            graph.op("Gather", [logits, graph.constant("one_index", 1)], "end", axis=2)]


def task_onnx_model(card: TaskCard | None, config: BertConfig, weights: Mapping[str, np.ndarray],
                    batch_size: int | None = None, seq_length: int | None = None):
    """The ONNX model (onnx.ModelProto) of the card's task graph (None: the encoder) with the checkpoint's weights
    (parameter names as the MindSpore network's, numpy). batch_size / seq_length None: a dynamic axis."""
    import onnx
    from onnx import TensorProto, helper

    task = card.task if card is not None else "encoder"
    graph = _GraphBuilder()
    sequence = _encoder(graph, weights, config)
    outputs = _heads(graph, task, sequence, weights, card.classifier_pooling if card is not None else "cls")
    batch = batch_size or "batch"
    seq = seq_length or "seq"
    hidden = config.hidden_size
    if task == "classification":
        shapes = [[batch, card.num_class]]
    elif task == "ner":
        shapes = [[batch, seq, len(card.labels)]]
    elif task == "squad":
        shapes = [[batch, seq]] * 2
    else:
        shapes = [[batch, seq, hidden], [batch, hidden]]
    names = output_names(task)
    graph.nodes.extend(helper.make_node("Identity", [value], [name], name=f"{name}/Identity")
                       for value, name in zip(outputs, names))
    proto = helper.make_graph(
        graph.nodes, f"bert_{task}",
        [helper.make_tensor_value_info(name, TensorProto.INT32, [batch, seq]) for name in INPUT_NAMES],
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name, shape in zip(names, shapes)],
        graph.initializers)
    model = helper.make_model(proto, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bert-mindspore",
                              ir_version=IR_VERSION)
    onnx.checker.check_model(model)
    return model


def write_task_onnx(path: Path | str, card: TaskCard | None, config: BertConfig, weights: Mapping[str, np.ndarray],
                    batch_size: int | None = None, seq_length: int | None = None) -> Path:
    import onnx

    onnx.save_model(task_onnx_model(card, config, weights, batch_size, seq_length), str(path))
    return Path(path)


def fused_op_counts(model) -> dict[str, int]:
    """How many of each fused operator (FUSED_OPS) an ONNX model holds."""
    counts = collections.Counter(node.op_type for node in model.graph.node)
    return {op: counts.get(op, 0) for op in FUSED_OPS}


def expected_fusions(config: BertConfig) -> tuple[str, ...]:
    """The fused operators an optimized graph of config must hold: NEZHA's attention has no fused kernel (nor,
    with no position embeddings, its embedding layer norm); relu has no GELU to fuse."""
    ops = ["SkipLayerNormalization"]
    if not config.use_relative_positions:
        ops = ["EmbedLayerNormalization", "Attention", *ops]
    if config.hidden_act in ("gelu", "gelu_tanh"):
        ops.append("BiasGelu" if config.hidden_act == "gelu" else "FastGelu")
    return tuple(ops)


def optimize_onnx(source: Path | str, target: Path | str, config: BertConfig) -> dict[str, int]:
    """onnxruntime's transformer optimizer (model_type bert) on source, written to target; the fused op counts.
    Refused in one line when an expected fusion (expected_fusions) did not happen."""
    import logging

    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    logging.getLogger("onnxruntime.transformers").setLevel(logging.ERROR)  # "producer not matched: pytorch"
    options = FusionOptions("bert")
    # NEZHA has no position embeddings: the embedding fusion would take the token type table for DistilBERT's
    # position table, with segment_ids as position ids, which the int8 quantizer's QEmbedLayerNormalization lacks
    options.enable_embed_layer_norm = not config.use_relative_positions
    optimized = optimize_model(str(source), model_type="bert", num_heads=config.num_attention_heads,
                               hidden_size=config.hidden_size, opt_level=0, optimization_options=options)
    counts = fused_op_counts(optimized.model)
    missing = [op for op in expected_fusions(config) if counts[op] == 0]
    if missing:
        raise ValueError(f"onnxruntime's optimizer fused no {', '.join(missing)} (fused: {counts_text(counts)}): "
                         f"not written; report this with --debug output")
    optimized.save_model_to_file(str(target))
    return counts


def counts_text(counts: Mapping[str, int]) -> str:
    """"12 Attention, 24 SkipLayerNormalization, ..." (the non-zero counts)."""
    return ", ".join(f"{count} {op}" for op, count in counts.items() if count) or "none"


def quantize_int8(source: Path | str, target: Path | str) -> None:
    """onnxruntime's dynamic quantization: int8 weights of the MatMuls (and fused Attention), activations quantized
    per batch at run time."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused ops (com.microsoft) have no ONNX shape inference: their outputs are float32
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": TensorProto.FLOAT})
