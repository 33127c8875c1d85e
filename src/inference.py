"""A finetuned model as a function of (input_ids, input_mask, segment_ids) batches: the graph that export.py
writes, run by MindSpore from the checkpoint, from an exported MindIR file, or from an ONNX file by onnxruntime.

The graph returns the task's scores only: classification logits [batch, classes]; NER tag scores
[batch, seq, tags] (a CRF's Viterbi decoding runs on the host, src/crf.viterbi_decode, with the transitions
read from the checkpoint); SQuAD start and end logits [batch, seq]. Every backend takes and returns numpy.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Protocol

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn, ops

from src.bert_model import ExactGelu
from src.checkpoint import load_checkpoint_into
from src.config import BertConfig
from src.finetune_models import BertForQuestionAnswering, BertForSequenceClassification, BertForTokenClassification
from src.task_card import TaskCard

BACKENDS = ("mindspore", "mindir", "onnx")
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")


def task_network(card: TaskCard, config: BertConfig) -> nn.Cell:
    """The inference graph of the card's task, dropout off."""
    config = config.replace(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    if card.task == "classification":
        return BertForSequenceClassification(config, card.num_class, card.classifier_pooling)
    if card.task == "ner":
        return BertForTokenClassification(config, len(card.labels))  # tag scores; the CRF decodes on the host
    return BertForQuestionAnswering(config)


def erf_polynomial(x: Tensor) -> Tensor:
    """erf by Abramowitz and Stegun 7.1.26 (absolute error 1.5e-7; 1.5e-6 in float32) from ops that
    MindSpore's ONNX exporter knows: it has no Erf, Sign or Reciprocal."""
    a = ops.abs(x)
    t = ops.div(ops.ones_like(a), 1.0 + 0.3275911 * a)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    y = 1.0 - poly * ops.exp(-a * a)
    return ops.select(x < 0, -y, y)


class PortableGelu(nn.Cell):
    """The erf GELU with erf_polynomial: what an ONNX export computes instead of ExactGelu."""

    def construct(self, x: Tensor) -> Tensor:
        return 0.5 * x * (1.0 + erf_polynomial(x * (1.0 / math.sqrt(2.0))))


def make_onnx_exportable(network: nn.Cell) -> nn.Cell:
    """Replace every ExactGelu of network by PortableGelu (outputs within 1e-6 of each other)."""
    for _, cell in network.cells_and_names():
        for name, child in list(cell.name_cells().items()):
            if isinstance(child, ExactGelu):
                setattr(cell, name, PortableGelu())
    return network


class Backend(Protocol):
    def __call__(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        ...


def numpy_outputs(outputs: Tensor | tuple[Tensor, ...]) -> list[np.ndarray]:
    """A cell's output (one tensor or a tuple) as a list of numpy arrays."""
    return [output.asnumpy() for output in (outputs if isinstance(outputs, tuple) else (outputs,))]


class CellBackend:
    """A MindSpore cell run on int32 tensors of the batch."""

    graph: nn.Cell

    def __call__(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        return numpy_outputs(self.graph(*(Tensor(a.astype(np.int32)) for a in (input_ids, input_mask, segment_ids))))


class MindSporeBackend(CellBackend):
    """The checkpoint loaded into the task graph, run by MindSpore."""

    def __init__(self, card: TaskCard, config: BertConfig, checkpoint: Path) -> None:
        self.graph = task_network(card, config)
        load_checkpoint_into(self.graph, checkpoint)
        self.graph.set_train(False)


class MindIRBackend(CellBackend):
    """A MindIR file of export.py, loaded back as a MindSpore GraphCell."""

    def __init__(self, path: Path) -> None:
        try:
            self.graph = nn.GraphCell(ms.load(str(path)))
        except (RuntimeError, ValueError) as error:
            raise ValueError(f"MindIR file {path} cannot be loaded ({str(error).splitlines()[0]}): pass a .mindir "
                             f"file written by export.py") from None


class OnnxBackend:
    """An ONNX file of export.py run by onnxruntime. MindSpore exports ONNX with a fixed batch size: a smaller
    batch is padded to it and the padding rows dropped from the outputs."""

    def __init__(self, path: Path) -> None:
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception classes
            raise ValueError(f"ONNX file {path} cannot be loaded ({str(error).splitlines()[0]}): pass a .onnx file "
                             f"written by export.py") from None
        self.batch_size = self.session.get_inputs()[0].shape[0]

    def __call__(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        rows = len(input_ids)
        if rows > self.batch_size:
            return [np.concatenate(parts) for parts in zip(*(
                self(input_ids[i:i + self.batch_size], input_mask[i:i + self.batch_size],
                     segment_ids[i:i + self.batch_size]) for i in range(0, rows, self.batch_size)))]
        pad = self.batch_size - rows
        feed = {name: np.pad(array.astype(np.int32), ((0, pad), (0, 0)))
                for name, array in zip(INPUT_NAMES, (input_ids, input_mask, segment_ids))}
        feed["input_mask"][rows:, 0] = 1  # padding rows attend to one position, so no row is all-masked
        return [output[:rows] for output in self.session.run(None, feed)]


def open_backend(kind: str, card: TaskCard, config: BertConfig, checkpoint: Path, model_file: str = "") -> Backend:
    if kind == "mindspore":
        return MindSporeBackend(card, config, checkpoint)
    if not model_file:
        raise ValueError(f"--backend {kind} needs --model_file: the .{kind} file export.py wrote")
    if not Path(model_file).is_file():
        raise FileNotFoundError(f"--model_file {model_file} does not exist: export it with export.py --file_format "
                                f"{kind.upper()}")
    return MindIRBackend(Path(model_file)) if kind == "mindir" else OnnxBackend(Path(model_file))
