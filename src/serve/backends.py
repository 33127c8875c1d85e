"""A finetuned model as a function of (input_ids, input_mask, segment_ids) batches: the graph that export.py
writes, run by MindSpore from the checkpoint, from an exported MindIR file, or from an ONNX file by onnxruntime.

The graph returns the task's scores only: classification logits [batch, classes]; NER tag scores
[batch, seq, tags] (a CRF's Viterbi decoding runs on the host, src/model/crf.viterbi_decode, with the transitions
read from the checkpoint); SQuAD start and end logits [batch, seq]. Every backend takes and returns numpy.

open_backend checks, before anything runs, that the task card, its vocab, the model config and the model file
agree: the card's max_seq_length within max_position_embeddings, the vocab within vocab_size, and a --model_file
taking [batch, max_seq_length] inputs and returning the card's task outputs (a file of another model, or exported
at another length, is refused in one line). A file of a fixed batch size runs batches of any size (padded, or in
slices), MindIR as ONNX.

Each backend also says how long the rows of a batch must be (sequence_length): predict.py pads a batch to its
longest input, not to max_seq_length, wherever the backend allows it (src/serve/pipelines.py). onnxruntime takes
any length of a file with dynamic axes (export.py --batch_size 0); a file of fixed shape keeps its length; MindSpore
in graph mode compiles a graph per input shape, so it gets a bounded set of bucket lengths (bucket_length).
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol

import mindspore as ms
import numpy as np
from mindspore import Tensor, nn

from src.config import BertConfig
from src.files.checkpoint import load_checkpoint_into
from src.model.task_heads import (
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    numpy_outputs,
)
from src.tasks.task_card import TaskCard, run_card_of

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


class Backend(Protocol):
    """What predict.py's pipelines run: a batch's arrays in, the task graph's outputs out."""

    compiles_per_shape: bool  # a new input shape costs a compile: short batches are padded to full rows (run_rows)

    def sequence_length(self, longest: int, max_seq_length: int) -> int:
        """The length to pad a batch whose longest row has longest tokens to."""
        ...

    def __call__(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        ...


BUCKETS = 8  # at most this many sequence lengths per max_seq_length for a backend that compiles per shape


def bucket_length(longest: int, max_seq_length: int) -> int:
    """The sequence length a batch whose longest row has longest tokens is padded to on a backend that compiles a
    graph per input shape (MindSpore's graph mode): the next multiple of a step of max_seq_length / 8 rounded up to
    a multiple of 16 (16 for max_seq_length 128, 64 for 512), at most max_seq_length. So at most 8 lengths are
    compiled (9 when max_seq_length is not a multiple of the step) and a row carries fewer than one step of
    padding beyond its batch's longest.

    Eighths, not powers of two or one shape a length: each new shape costs a compile, each padded token a share of
    the batch, and for the files of thousands of texts predict.py serves eighths cost least; MindSpore's
    dynamic-shape graph compiles once but runs every batch slower (the measurements: docs/inference.md)."""
    step = 16 * max(1, -(-max_seq_length // (16 * BUCKETS)))
    return min(max_seq_length, step * max(1, -(-longest // step)))


def run_rows(backend: Backend, arrays: tuple[np.ndarray, ...], batch_size: int) -> list[np.ndarray]:
    """backend on a batch; on a backend that compiles per shape (backend.compiles_per_shape) a batch of fewer rows
    than batch_size is padded to it, so the rows of the last batch cost no compile of their own."""
    if backend.compiles_per_shape:
        return _fixed_batches(backend, max(batch_size, len(arrays[0])), arrays)
    return backend(*arrays)


def _fixed_batches(run, batch_size: int | None, arrays: tuple[np.ndarray, ...]) -> list[np.ndarray]:
    """run (a graph of batch_size rows, None: any) on arrays of any number of rows: a larger batch in slices of
    batch_size, a smaller one padded to it and the padding rows dropped from the outputs."""
    rows = len(arrays[0])
    if batch_size is None or rows == batch_size:
        return run(*arrays)
    if rows > batch_size:
        return [np.concatenate(parts) for parts in zip(*(
            _fixed_batches(run, batch_size, tuple(a[i:i + batch_size] for a in arrays))
            for i in range(0, rows, batch_size)))]
    padded = [np.pad(array, ((0, batch_size - rows), (0, 0))) for array in arrays]
    padded[1][rows:, 0] = 1  # input_mask: padding rows attend to one position, so no row is all-masked
    return [output[:rows] for output in run(*padded)]


class CellBackend:
    """A MindSpore cell run on int32 tensors of the batch."""

    graph: nn.Cell
    compiles_per_shape = False

    def __call__(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        return numpy_outputs(self.graph(*(Tensor(a.astype(np.int32)) for a in (input_ids, input_mask, segment_ids))))


def load_weights(network: nn.Cell, checkpoint: Path, model_source: Path | str) -> None:
    """load_checkpoint_into, and one line when the checkpoint holds encoder weights the model has no place for: a
    checkpoint of another kind of model (absolute position embeddings into NEZHA, a learned relative-position table
    into the functional one) would otherwise load with those weights silently left out. Task heads, optimizer
    state and the CRF (decoded on the host) may be left out."""
    stray = [name for name in load_checkpoint_into(network, checkpoint) if name.startswith("bert.")]
    if stray:
        more = f" and {len(stray) - 1} more" if len(stray) > 1 else ""
        raise ValueError(f"checkpoint {checkpoint} holds {stray[0]}{more}, which the model of {model_source} has no "
                         f"place for: the checkpoint was trained with another model config (BERT or NEZHA, "
                         f"relative_position_type); pass the model preset or YAML it was trained with")


class MindSporeBackend(CellBackend):
    """The checkpoint loaded into the task graph, run by MindSpore: in graph mode a graph is compiled per input
    shape, so batches are padded to bucket lengths (bucket_length) and to full rows (run_rows)."""

    compiles_per_shape = True

    def __init__(self, card: TaskCard, config: BertConfig, checkpoint: Path,
                 model_source: Path | str = "the task card's model config") -> None:
        self.graph = task_network(card, config)
        load_weights(self.graph, checkpoint, model_source)
        self.graph.set_train(False)

    def sequence_length(self, longest: int, max_seq_length: int) -> int:
        return bucket_length(longest, max_seq_length)


def crf_weights(checkpoint: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(transitions, start_transitions, end_transitions) of a CRF tagger's checkpoint, for the host's Viterbi
    decoding of any backend's tag scores; one line when the checkpoint has none (its card says use_crf)."""
    from src.files.checkpoint import read_checkpoint

    params = read_checkpoint(checkpoint)
    names = ("crf.transitions", "crf.start_transitions", "crf.end_transitions")
    if not all(name in params for name in names):
        raise ValueError(f"checkpoint {checkpoint} has no CRF weights ({names[0]}) but its task card says use_crf: "
                         f"the card belongs to another run; finetune again or copy the card of the run that wrote "
                         f"this checkpoint")
    return tuple(params[name] for name in names)


def _mindir_input_shapes(path: Path) -> list[tuple[int | None, ...]]:
    """The input shapes a MindIR file declares (None: a dynamic dimension), read from its protobuf; a file that
    is not MindSpore's MindIR is refused here, before MindSpore's loader logs its errors on stderr."""
    from google.protobuf.message import DecodeError
    from mindspore.train.mind_ir_pb2 import ModelProto

    model = ModelProto()
    try:
        model.ParseFromString(Path(path).read_bytes())
    except (DecodeError, UnicodeDecodeError):
        raise ValueError("not a MindIR protobuf") from None
    if model.producer_name != "MindSpore" or not model.graph.input:
        raise ValueError("not a MindIR graph written by MindSpore")
    return [tuple(None if d < 0 else int(d) for d in value.tensor[0].dims) if value.tensor else ()
            for value in model.graph.input]


class MindIRBackend(CellBackend):
    """A MindIR file of export.py, loaded back as a MindSpore GraphCell. A file with a fixed batch size is run as
    the ONNX one: a smaller batch padded to it, a larger one in slices."""

    def __init__(self, path: Path) -> None:
        try:
            self.input_shapes = _mindir_input_shapes(path)
            self.graph = nn.GraphCell(ms.load(str(path)))
        except Exception as error:  # protobuf's DecodeError, MindSpore's RuntimeError / ValueError
            first = (str(error).splitlines() or [type(error).__name__])[0]
            raise ValueError(f"MindIR file {path} cannot be loaded ({first}): pass a .mindir file written by "
                             f"export.py") from None
        self.batch_size = self.input_shapes[0][0] if self.input_shapes and self.input_shapes[0] else None

    def sequence_length(self, longest: int, max_seq_length: int) -> int:
        """The file's own length (export.py writes MindIR of a fixed length); buckets where it is dynamic."""
        seq = self.input_shapes[0][1] if self.input_shapes and len(self.input_shapes[0]) == 2 else None
        return seq or bucket_length(longest, max_seq_length)

    def __call__(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        run = super().__call__
        return _fixed_batches(run, self.batch_size,
                              tuple(a.astype(np.int32) for a in (input_ids, input_mask, segment_ids)))

    def output_shapes(self) -> list[tuple[int | None, ...]]:
        """The shapes of the outputs, from one run on a batch of padding (the file does not declare them)."""
        batch, seq = (self.input_shapes[0] + (None, None))[:2] if self.input_shapes else (None, None)
        ids = np.zeros((batch or 1, seq or 1), np.int32)
        mask = ids.copy()
        mask[:, 0] = 1
        shapes = [tuple(output.shape) for output in CellBackend.__call__(self, ids, mask, ids)]
        return [(None, *shape[1:]) if batch is None and shape else shape for shape in shapes]


class OnnxBackend:
    """An ONNX file of export.py run by onnxruntime. A file with dynamic axes (export.py --batch_size 0) takes any
    batch and length; one of a fixed batch size runs a smaller batch padded to it (the padding rows dropped from
    the outputs) and a larger one in slices, at the file's length."""

    compiles_per_shape = False

    def __init__(self, path: Path) -> None:
        import onnxruntime

        try:
            self.session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # onnxruntime raises its own exception classes
            first = (str(error).splitlines() or [type(error).__name__])[0]
            raise ValueError(f"ONNX file {path} cannot be loaded ({first}): pass a .onnx file "
                             f"written by export.py") from None
        self.input_shapes = [tuple(d if isinstance(d, int) and d > 0 else None for d in value.shape)
                             for value in self.session.get_inputs()]
        names = [value.name for value in self.session.get_inputs()]
        self.input_names = INPUT_NAMES if sorted(names) == sorted(INPUT_NAMES) else names  # by name where named
        self.batch_size = self.input_shapes[0][0] if self.input_shapes and self.input_shapes[0] else None

    def output_shapes(self) -> list[tuple[int | None, ...]]:
        return [tuple(d if isinstance(d, int) and d > 0 else None for d in value.shape)
                for value in self.session.get_outputs()]

    def sequence_length(self, longest: int, max_seq_length: int) -> int:
        """longest itself where the sequence axis is dynamic (onnxruntime compiles nothing per shape)."""
        seq = self.input_shapes[0][1] if self.input_shapes and len(self.input_shapes[0]) == 2 else None
        return seq or longest

    def _run(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, dict(zip(self.input_names, (input_ids, input_mask, segment_ids))))

    def __call__(self, input_ids: np.ndarray, input_mask: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
        return _fixed_batches(self._run, self.batch_size,
                              tuple(a.astype(np.int32) for a in (input_ids, input_mask, segment_ids)))


def _shapes_text(shapes: list[tuple[int | None, ...]]) -> str:
    return ", ".join("[" + ", ".join("batch" if d is None else str(d) for d in shape) + "]" for shape in shapes)


def _fits(got: tuple[int | None, ...], want: tuple[int | None, ...]) -> bool:
    """Whether a shape matches the expected one, a dynamic (None) dimension matching any size."""
    return len(got) == len(want) and all(g is None or w is None or g == w for g, w in zip(got, want))


def expected_output_shapes(card: TaskCard, batch: int | None) -> list[tuple[int | None, ...]]:
    """The output shapes of the card's task graph (task_network) for inputs [batch, card.max_seq_length]."""
    seq = card.max_seq_length
    if card.task == "classification":
        return [(batch, card.num_class)]
    if card.task == "ner":
        return [(batch, seq, len(card.labels))]
    return [(batch, seq), (batch, seq)]


def check_model_file(backend: MindIRBackend | OnnxBackend, path: Path, card: TaskCard, card_file: Path | str,
                     file_format: str) -> None:
    """One line, before any text is run, when a model file does not take the card's inputs
    [batch, max_seq_length] x 3 or does not return its task's outputs (a file exported from another model)."""
    directory = Path(card_file).parent
    again = f"export this checkpoint again: python export.py --ckpt_file {directory} --file_format {file_format}"
    shapes = backend.input_shapes
    if len(shapes) != 3 or any(len(shape) != 2 for shape in shapes):
        raise ValueError(f"--model_file {path} takes {len(shapes)} input(s) of shape {_shapes_text(shapes)}, not "
                         f"export.py's input_ids, input_mask, segment_ids [batch, seq]: {again}")
    seq = shapes[0][1]
    if seq is not None and seq != card.max_seq_length:
        raise ValueError(f"--model_file {path} takes inputs of {seq} tokens ({_shapes_text(shapes[:1])}) but the "
                         f"model's task card {card_file} has max_seq_length {card.max_seq_length}: the file was "
                         f"exported with another --max_seq_length; {again} (the card's length is its default)")
    batch = shapes[0][0]
    outputs = backend.output_shapes()
    wanted = expected_output_shapes(card, batch)
    if len(outputs) != len(wanted) or not all(_fits(got, want) for got, want in zip(outputs, wanted)):
        raise ValueError(f"--model_file {path} returns {len(outputs)} output(s) of shape {_shapes_text(outputs)} but "
                         f"the {card.task} model of {card_file} returns {_shapes_text(wanted)}: the file was exported "
                         f"from another model; pass the file export.py wrote from this checkpoint, or {again}")


def check_vocab_fits(vocab_file: Path, config: BertConfig, model_source: Path | str) -> None:
    """One line when the vocab has more tokens than the model's embedding table has rows: their ids would index
    past it (a smaller vocab is fine: tables are often padded)."""
    from src.data.tokenization import load_vocab
    size = len(load_vocab(vocab_file))
    if size > config.vocab_size:
        raise ValueError(f"vocab {vocab_file} has {size} tokens but the model ({model_source}) has vocab_size "
                         f"{config.vocab_size}: token ids past {config.vocab_size - 1} would index past its embedding "
                         f"table; copy the vocab.txt the run was finetuned with beside the checkpoint")


def check_model_fits(card: TaskCard, config: BertConfig, card_file: Path | str, vocab_file: Path | None,
                     model_source: Path | str) -> None:
    """One line when the card's sequence length or the vocab's size do not fit the model, before any graph is
    built (MindSpore would fail with its C++ stack, or look up ids past the embedding table)."""
    if card.max_seq_length > config.max_position_embeddings:
        raise ValueError(f"task card {card_file} has max_seq_length {card.max_seq_length} but the model "
                         f"({model_source}) has max_position_embeddings {config.max_position_embeddings}: the card "
                         f"and the model are of different runs; copy the run's own .task.json and .model.yaml "
                         f"beside its checkpoints")
    if vocab_file is not None:
        check_vocab_fits(vocab_file, config, model_source)


def open_backend(kind: str, card: TaskCard, config: BertConfig, checkpoint: Path, model_file: str = "") -> Backend:
    """The backend of kind for the checkpoint's run, after checking that the card, its vocab, the model and the
    model file agree on every dimension (sequence length, vocab size, outputs), in one line if not."""
    try:
        run = run_card_of(checkpoint)
        card_file, vocab_file, model_source = run.card_file, run.vocab_file, run.model_file
    except ValueError:  # a checkpoint not named as a run's: its description was given some other way
        card_file, vocab_file, model_source = Path("the task card"), None, Path("the model config")
    check_model_fits(card, config, card_file, vocab_file if vocab_file and vocab_file.is_file() else None,
                     model_source)
    if kind == "mindspore":
        return MindSporeBackend(card, config, checkpoint, model_source)
    if not model_file:
        raise ValueError(f"--backend {kind} needs --model_file: the .{kind} file export.py wrote")
    path = Path(model_file)
    if not path.is_file():
        raise FileNotFoundError(f"--model_file {model_file} "
                                f"{'is a directory' if path.is_dir() else 'does not exist'}: export it with "
                                f"export.py --file_format {kind.upper()}")
    other = {"mindir": "onnx", "onnx": "mindir"}[kind]
    if path.suffix.lower() == f".{other}":
        raise ValueError(f"--model_file {model_file} is {'an ONNX' if other == 'onnx' else 'a MindIR'} file but "
                         f"--backend is {kind}: pass --backend {other}")
    backend = MindIRBackend(path) if kind == "mindir" else OnnxBackend(path)
    check_model_file(backend, path, card, card_file, kind.upper())
    return backend
