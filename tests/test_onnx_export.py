"""The ONNX graph written from the weights (src/serve/onnx_graph.py): the MindSpore graph's outputs within 1e-4 at
two batch sizes and sequence lengths of one dynamic file, plain and after onnxruntime's transformer optimizer,
whose fusions (Attention, SkipLayerNormalization, BiasGelu, EmbedLayerNormalization) appear for BERT; NEZHA's
relative positions export within 1e-4 with no fused attention; export.py's --optimize and --quantize int8."""
import numpy as np
import onnx
import pytest
from mindspore import Tensor

import export
from src.config import load_bert_config
from src.model.task_heads import numpy_outputs
from src.serve.backends import OnnxBackend, task_network
from src.serve.onnx_graph import optimize_onnx, write_task_onnx
from src.tasks.task_card import RunCard, TaskCard
from tests.helpers import DATA

SHAPES = ((2, 32), (3, 11))  # (batch, seq) of one dynamic file
TINY = load_bert_config("tiny").replace(vocab_size=500, seq_length=32, max_position_embeddings=64)
NEZHA = {"functional": TINY.replace(use_relative_positions=True, max_relative_position=8),
         "learned": TINY.replace(use_relative_positions=True, relative_position_type="learned",
                                 max_relative_position=8)}
CARDS = {"classifier": TaskCard(task="classification", max_seq_length=32, labels=("neg", "pos"), num_class=2),
         "classifier_mean": TaskCard(task="classification", max_seq_length=32, labels=("a", "b", "c"), num_class=3,
                                     classifier_pooling="mean"),
         "tagger": TaskCard(task="ner", max_seq_length=32, labels=("O", "B-PER", "I-PER", "B-LOC", "I-LOC")),
         "squad": TaskCard(task="squad", max_seq_length=32)}


def random_network(card, config, seed=0):
    """The card's task graph with every parameter random (biases and LayerNorm parameters too, which start as
    zeros and ones), so that a weight in the wrong place shows."""
    network = task_network(card, config)
    rng = np.random.default_rng(seed)
    for parameter in network.get_parameters():
        value = rng.normal(0.0, 0.05, parameter.shape).astype(np.float32)
        if "LayerNorm.weight" in parameter.name:
            value += 1.0
        parameter.set_data(Tensor(value))
    network.set_train(False)
    return network


def batch(rows, seq, seed, vocab_size=TINY.vocab_size):
    """input_ids, input_mask, segment_ids: odd rows padded from the middle, a second segment from a third in."""
    rng = np.random.default_rng(seed)
    mask = np.ones((rows, seq), np.int32)
    mask[1::2, seq // 2:] = 0
    segments = np.zeros((rows, seq), np.int32)
    segments[:, seq // 3:] = 1
    return [rng.integers(5, vocab_size, (rows, seq)).astype(np.int32) * mask, mask, segments * mask]


def largest_difference(network, path):
    """The largest difference of the ONNX file's outputs from the network's over SHAPES."""
    backend = OnnxBackend(path)
    worst = 0.0
    for seed, (rows, seq) in enumerate(SHAPES):
        inputs = batch(rows, seq, seed)
        want = numpy_outputs(network(*(Tensor(a) for a in inputs)))
        got = backend(*inputs)
        assert [g.shape for g in got] == [w.shape for w in want]
        worst = max(worst, *(float(np.abs(g - w).max()) for g, w in zip(got, want)))
    return worst


def exported(tmp_path, card, config, seed=0):
    """(network, plain file, optimized file, fused op counts)."""
    network = random_network(card, config, seed)
    weights = {parameter.name: parameter.asnumpy() for parameter in network.get_parameters()}
    plain = write_task_onnx(tmp_path / "plain.onnx", card, config, weights)
    counts = optimize_onnx(plain, tmp_path / "optimized.onnx", config)
    return network, plain, tmp_path / "optimized.onnx", counts


@pytest.mark.parametrize("name", sorted(CARDS))
def test_bert_graph_plain_and_optimized_match_mindspore_at_two_shapes_with_every_fusion(tmp_path, name):
    network, plain, optimized, counts = exported(tmp_path, CARDS[name], TINY)
    assert largest_difference(network, plain) < 1e-4  # measured 3e-7
    assert largest_difference(network, optimized) < 1e-4
    # 2 layers: one Attention and one BiasGelu each, two residual layer norms each, the embeddings' one
    assert counts == {"EmbedLayerNormalization": 1, "Attention": 2, "SkipLayerNormalization": 4, "BiasGelu": 2,
                      "Gelu": 0, "FastGelu": 0}
    assert OnnxBackend(optimized).input_shapes == [(None, None)] * 3


@pytest.mark.parametrize("kind", sorted(NEZHA))
def test_nezha_graph_matches_mindspore_without_a_fused_attention(tmp_path, kind):
    network, plain, optimized, counts = exported(tmp_path, CARDS["tagger"], NEZHA[kind])
    assert largest_difference(network, plain) < 1e-4  # measured 5e-7
    assert largest_difference(network, optimized) < 1e-4
    # relative positions: no Attention kernel; the embeddings' Add + LayerNorm is a fifth SkipLayerNormalization
    assert counts["Attention"] == 0 and counts["EmbedLayerNormalization"] == 0
    assert counts["SkipLayerNormalization"] == 5 and counts["BiasGelu"] == 2


@pytest.mark.parametrize("activation, fused", [("gelu_tanh", "FastGelu"), ("relu", None)])
def test_other_activations_match_and_fuse(tmp_path, activation, fused):
    network, plain, optimized, counts = exported(tmp_path, CARDS["classifier"], TINY.replace(hidden_act=activation))
    assert largest_difference(network, plain) < 1e-4
    assert largest_difference(network, optimized) < 1e-4
    assert counts["Attention"] == 2 and (fused is None or counts[fused] == 2)


def test_optimizer_refuses_in_one_line_when_the_fusions_are_absent(tmp_path):
    """A graph without BERT's attention pattern (NEZHA's), optimized as BERT: the fusions BERT must get are missing,
    and nothing is written."""
    network = random_network(CARDS["classifier"], NEZHA["functional"])
    weights = {parameter.name: parameter.asnumpy() for parameter in network.get_parameters()}
    plain = write_task_onnx(tmp_path / "nezha.onnx", CARDS["classifier"], NEZHA["functional"], weights)
    with pytest.raises(ValueError, match="fused no Attention ") as error:
        optimize_onnx(plain, tmp_path / "optimized.onnx", TINY)
    assert "\n" not in str(error.value) and not (tmp_path / "optimized.onnx").exists()


def finetuned_run(tmp_path, card, config, prefix, vocab=None):
    """A run directory as finetuning leaves it: a checkpoint of random weights and its description."""
    from src.files.checkpoint import write_checkpoint
    directory = tmp_path / "run"
    RunCard(directory, prefix).write(card, vocab, config)
    write_checkpoint(random_network(card, config), directory / f"{prefix}-1_1.ckpt")
    return directory


def test_export_optimize_writes_a_dynamic_fused_graph_and_prints_the_counts(tmp_path, capsys):
    run = finetuned_run(tmp_path, CARDS["squad"], TINY, "squad")
    result = export.main(["--ckpt_file", str(run), "--file_name", str(tmp_path / "squad"), "--file_format", "ONNX",
                          "--batch_size", "0", "--optimize", "true"])
    out = capsys.readouterr().out
    assert "fused: 1 EmbedLayerNormalization, 2 Attention, 4 SkipLayerNormalization, 2 BiasGelu" in out
    assert "inputs [dynamic, dynamic]" in out and result["max_difference"] < 1e-4
    model = onnx.load(tmp_path / "squad.onnx")
    assert {"Attention", "SkipLayerNormalization"} <= {node.op_type for node in model.graph.node}
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run", "squad.onnx"]  # no partial files left


def test_export_quantize_int8_writes_int8_matmuls_near_the_float_graph(tmp_path, capsys):
    lines = (DATA / "sentiment_zh_2400.txt").read_text(encoding="utf-8").splitlines()[:20]
    reviews = [line.split("\t") for line in lines]
    data = tmp_path / "data"
    data.mkdir()
    characters = sorted({c for _, text in reviews for c in text if not c.isspace()})
    (data / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters]) + "\n",
                                    encoding="utf-8")
    (data / "calibration.txt").write_text("".join(f"{label}\t{text}\n" for label, text in reviews), encoding="utf-8")
    run = finetuned_run(tmp_path, CARDS["classifier"], TINY, "classifier", vocab=data / "vocab.txt")
    export.main(["--ckpt_file", str(run), "--file_name", str(tmp_path / "int8"), "--file_format", "ONNX",
                 "--batch_size", "0", "--optimize", "true", "--quantize", "int8",
                 "--calibration_file", str(data / "calibration.txt")])
    out = capsys.readouterr().out
    assert "int8: outputs differ from the float32 graph's by at most" in out and "int8 optimized" in out
    ops = {node.op_type for node in onnx.load(tmp_path / "int8.onnx").graph.node}
    assert "QAttention" in ops and "DynamicQuantizeLinear" in ops
    network = random_network(CARDS["classifier"], TINY)
    inputs = batch(4, 32, 0)
    np.testing.assert_allclose(OnnxBackend(tmp_path / "int8.onnx")(*inputs)[0],
                               network(*(Tensor(a) for a in inputs)).asnumpy(), atol=0.05)
    assert "int8: accuracy" in out
    assert sorted(path.name for path in tmp_path.iterdir()) == ["data", "int8.onnx", "int8.onnx.task.json", "run"]


@pytest.mark.parametrize("flags, fragment", [
    (["--file_format", "MINDIR", "--optimize", "true"], "--optimize true is for ONNX files"),
    (["--file_format", "MINDIR", "--quantize", "int8"], "--quantize int8 is for ONNX files"),
    (["--file_format", "ONNX", "--quantize", "int4"], "invalid choice: 'int4'"),
])
def test_export_refuses_optimization_flags_it_cannot_apply_in_one_line(tmp_path, capsys, flags, fragment):
    run = finetuned_run(tmp_path, CARDS["classifier"], TINY, "classifier")
    capsys.readouterr()
    with pytest.raises(SystemExit) as error:
        export.main(["--ckpt_file", str(run), "--file_name", str(tmp_path / "x"), *flags])
    code = error.value.code  # argparse's refusals are on stderr, exit status 2
    message = code if isinstance(code, str) else capsys.readouterr().err.strip()
    assert "\n" not in message and fragment in message, message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
