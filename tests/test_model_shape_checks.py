"""Every dimension a user can get wrong between flags, task card, vocab, checkpoint and exported model file is checked
before a graph is built, and ends in one line naming it: export.py's --max_seq_length against the model's
max_position_embeddings (BERT and NEZHA), --batch_size, the vocab beside a finetuned checkpoint against vocab_size,
predict.py's --model_file against the card (sequence length, outputs of another model); and checkpoint conversion
of files that are not what they claim (pickled code, truncated, corrupt, bad config.json) says so in one line,
writing nothing and leaving no MindSpore IR dump (rank_0/, *.ir) in the working directory."""
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers

import export
import predict
from src.files.checkpoint import read_checkpoint, write_checkpoint
from src.serve.backends import MindIRBackend, MindSporeBackend, OnnxBackend, task_network
from src.tasks.task_card import RunCard, TaskCard, run_card_of
from tests.helpers import ROOT, SMALL, convert_hf, model_yaml
from tools import convert_checkpoint

pytestmark = pytest.mark.reference

PYTHON = sys.executable
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
TEXTS = "一丁七\n万丈三上\n下不与丐丑专且\n丕世丗丘丙业丛东丝\n丞丟\n"  # the runs' vocab's characters


def leftovers(directory: Path) -> list[str]:
    """MindSpore's IR dumps of a failed graph compile (rank_0/om/analyze_fail.ir) under directory."""
    return [str(p) for p in directory.rglob("*") if p.name == "rank_0" or p.suffix == ".ir"]


def refused(main, argv, *fragments) -> str:
    """main(argv) ends with one line naming the script and containing each fragment: no internal error."""
    with pytest.raises(SystemExit) as stop:
        main([str(arg) for arg in argv])
    message = str(stop.value.code)
    assert "\n" not in message and "internal error" not in message, message
    for fragment in fragments:
        assert fragment in message, message
    return message


def run_script(script: str, *argv, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("GLOG_v", "BERT_DEBUG")}
    return subprocess.run([PYTHON, str(ROOT / script), *map(str, argv)], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=120)


def one_line_failure(result: subprocess.CompletedProcess, script: str, *fragments) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.returncode == 1, (result.returncode, result.stderr[-3000:])
    assert len(lines) == 1 and lines[0].startswith(f"{Path(script).name}: "), result.stderr[-3000:]
    assert "internal error" not in lines[0] and "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- models

@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """SMALL (max_position_embeddings 64) as HuggingFace BERT and NEZHA, converted by tools/convert_checkpoint.py:
    {"bert": (ckpt, yaml), "nezha": (ckpt, yaml)}."""
    models = {}
    for kind, model_class, config_class in (("bert", transformers.BertForPreTraining, transformers.BertConfig),
                                            ("nezha", transformers.NezhaForPreTraining, transformers.NezhaConfig)):
        directory = tmp_path_factory.mktemp(kind)
        torch.manual_seed(0)
        convert_hf(model_class(config_class(**SMALL)).eval(), directory)
        models[kind] = (directory / "converted.ckpt", directory / "converted.yaml")
    return models


def make_run(directory: Path, task: str, labels=(), max_seq_length: int = 32, vocab_tokens: int = 60,
             vocab_size: int = 99, prefix: str | None = None) -> Path:
    """A finetuning run's directory as run_classifier.py / run_ner.py leave it (checkpoint, task card, vocab, model
    YAML), with a freshly initialised tiny model of max_position_embeddings 64."""
    directory.mkdir(parents=True)
    config_path = model_yaml(directory, vocab_size, min(max_seq_length, 64), max_position_embeddings=64,
                             num_hidden_layers=1, hidden_size=32, intermediate_size=37, hidden_dropout_prob=0.0,
                             attention_probs_dropout_prob=0.0)
    from src.config import load_bert_config
    config = load_bert_config(config_path)
    config_path.unlink()
    card = TaskCard(task=task, max_seq_length=max_seq_length, labels=tuple(labels),
                    num_class=len(labels) if task == "classification" else 0)
    vocab = directory / "source_vocab.txt"
    vocab.write_text("\n".join(SPECIALS + [chr(0x4E00 + i) for i in range(vocab_tokens - len(SPECIALS))]) + "\n",
                     encoding="utf-8")
    prefix = prefix or {"classification": "classifier", "ner": "ner", "squad": "squad"}[task]
    RunCard(directory, prefix).write(card, vocab, config)
    vocab.unlink()
    write_checkpoint(task_network(card, config), directory / f"{prefix}-1_1.ckpt")
    return directory


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    (base / "texts.txt").write_text(TEXTS, encoding="utf-8")
    return {"base": base,
            "classifier": make_run(base / "classifier", "classification", ("neg", "pos")),
            "three_classes": make_run(base / "three_classes", "classification", ("a", "b", "c")),
            "ner": make_run(base / "ner", "ner", ("O", "B-PER", "I-PER")),
            "long_card": make_run(base / "long_card", "classification", ("neg", "pos"), max_seq_length=128),
            "big_vocab": make_run(base / "big_vocab", "classification", ("neg", "pos"), vocab_tokens=120)}


@pytest.fixture(scope="module")
def model_files(runs):
    """export.py's files of the runs: the classifier as ONNX (batch 4) and MindIR (batch 3), and at 16 tokens; the
    three-class classifier and the tagger as MindIR / ONNX."""
    out = runs["base"] / "exported"
    files = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(runs["base"])  # an IR dump of a failure would land here, not in the repository
        files.update(_export_all(runs, out))
    assert not leftovers(runs["base"])
    return files


def _export_all(runs, out) -> dict:
    files = {}
    for name, run, file_format, flags in (("classifier_onnx", "classifier", "ONNX", ["--batch_size", "4"]),
                                          ("classifier_batch3", "classifier", "MINDIR", ["--batch_size", "3"]),
                                          ("classifier_16", "classifier", "MINDIR", ["--max_seq_length", "16"]),
                                          ("three_classes", "three_classes", "MINDIR", []),
                                          ("ner", "ner", "ONNX", ["--batch_size", "2"])):
        files[name] = Path(export.main(["--ckpt_file", str(runs[run]), "--file_name", str(out / name),
                                        "--file_format", file_format, *flags])["file"])
    return files


# ---------------------------------------------------------------- A: export checks the model's shape first

def test_export_refuses_a_sequence_longer_than_the_model_in_one_line_without_an_ir_dump(converted, tmp_path):
    """The reported case: a converted HF model of max_position_embeddings 64 exported at --max_seq_length 128 (BERT:
    absolute positions; NEZHA: the relative-position table is built for max_position_embeddings positions too)."""
    for kind, length in (("bert", 128), ("nezha", 65)):
        checkpoint, yaml_path = converted[kind]
        result = run_script("export.py", "--ckpt_file", checkpoint, "--bert_network", yaml_path, "--file_name",
                            tmp_path / kind, "--max_seq_length", length, cwd=tmp_path)
        one_line_failure(result, "export.py", f"--max_seq_length {length} exceeds the model's max_position_embeddings "
                                              f"64", "pass --max_seq_length 64 or less")
    assert sorted(p.name for p in tmp_path.iterdir()) == [], leftovers(tmp_path)


def test_export_of_a_pretrained_checkpoint_defaults_to_the_models_length(converted, tmp_path, monkeypatch):
    """No --max_seq_length: min(128, max_position_embeddings), here 64; --file_format in lower case, and a
    --file_name that already ends in the extension (not doubled)."""
    monkeypatch.chdir(tmp_path)
    checkpoint, yaml_path = converted["bert"]
    result = export.main(["--ckpt_file", str(checkpoint), "--bert_network", str(yaml_path), "--file_name",
                          str(tmp_path / "encoder.onnx"), "--file_format", "onnx", "--batch_size", "2"])
    assert result["file"] == str(tmp_path / "encoder.onnx")
    assert OnnxBackend(tmp_path / "encoder.onnx").input_shapes == [(2, 64)] * 3
    assert not leftovers(tmp_path)


@pytest.mark.parametrize("flags, fragments", [
    (["--batch_size", "-1"], ["--batch_size -1", "at least 1"]),
    (["--max_seq_length", "-5"], ["--max_seq_length -5 is out of range"]),
])
def test_export_refuses_bad_batch_and_length_flags(converted, tmp_path, monkeypatch, flags, fragments):
    monkeypatch.chdir(tmp_path)
    checkpoint, yaml_path = converted["bert"]
    refused(export.main, ["--ckpt_file", checkpoint, "--bert_network", yaml_path, "--file_name", tmp_path / "x",
                          *flags], *fragments)
    assert list(tmp_path.iterdir()) == []


def test_export_refuses_a_checkpoint_of_another_kind_of_model(converted, tmp_path, monkeypatch):
    """A BERT checkpoint with a NEZHA model YAML loaded every parameter NEZHA has and dropped the position
    embeddings silently: now refused, naming the weight without a place."""
    monkeypatch.chdir(tmp_path)
    refused(export.main, ["--ckpt_file", converted["bert"][0], "--bert_network", converted["nezha"][1],
                          "--file_name", tmp_path / "x"], "bert.embeddings.position_embeddings.weight",
            "has no place for", "pass the model preset or YAML it was trained with")
    assert list(tmp_path.iterdir()) == []


def test_export_and_predict_refuse_a_card_or_vocab_that_does_not_fit_the_model(runs, tmp_path, monkeypatch):
    """A task card of 128 tokens beside a model of 64 positions, a vocab of 120 tokens beside a model of 99."""
    monkeypatch.chdir(tmp_path)
    texts = runs["base"] / "texts.txt"
    card = run_card_of(next(runs["long_card"].glob("*.ckpt")))
    for main, argv in ((export.main, ["--ckpt_file", runs["long_card"], "--file_name", tmp_path / "x"]),
                       (predict.main, ["--load_finetune_checkpoint_path", runs["long_card"], "--input_file", texts])):
        refused(main, argv, f"task card {card.card_file} has max_seq_length 128 but the model ({card.model_file}) "
                            f"has max_position_embeddings 64", "of different runs")
    refused(export.main, ["--ckpt_file", runs["classifier"], "--file_name", tmp_path / "x", "--max_seq_length", "80"],
            "--max_seq_length 80 exceeds the model's max_position_embeddings 64", "pass --max_seq_length 64 or less")
    vocab = runs["big_vocab"] / "classifier.vocab.txt"
    for main, argv in ((export.main, ["--ckpt_file", runs["big_vocab"], "--file_name", tmp_path / "x"]),
                       (predict.main, ["--load_finetune_checkpoint_path", runs["big_vocab"], "--input_file", texts,
                                       "--output_file", tmp_path / "predictions.jsonl"])):
        refused(main, argv, f"vocab {vocab} has 120 tokens but the model", "vocab_size 99")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- A: predict checks the model file against the card

def test_model_files_of_any_batch_size_give_the_checkpoints_outputs(runs, model_files, tmp_path, capsys):
    """A fixed-batch file (ONNX batch 4, MindIR batch 3) runs batches of any size (padded, or in slices): predict.py
    with --batch_size 5 on 5 texts gives the checkpoint's labels and probabilities on each file."""
    checkpoint = next(runs["classifier"].glob("*.ckpt"))
    card, _, config = run_card_of(checkpoint).read()
    rng = np.random.default_rng(0)
    inputs = [rng.integers(5, 60, (7, 32)).astype(np.int32), np.ones((7, 32), np.int32), np.zeros((7, 32), np.int32)]
    expected = MindSporeBackend(card, config, checkpoint)(*inputs)[0]
    assert MindIRBackend(model_files["classifier_batch3"]).batch_size == 3
    for name in ("classifier_onnx", "classifier_batch3"):
        backend = (OnnxBackend if name.endswith("onnx") else MindIRBackend)(model_files[name])
        np.testing.assert_allclose(backend(*inputs)[0], expected, atol=1e-5)
    outputs = {}
    for backend, model_file in (("mindspore", ""), ("onnx", model_files["classifier_onnx"]),
                                ("mindir", model_files["classifier_batch3"])):
        capsys.readouterr()
        predict.main(["--load_finetune_checkpoint_path", str(runs["classifier"]), "--input_file",
                      str(runs["base"] / "texts.txt"), "--backend", backend, "--model_file", str(model_file),
                      "--batch_size", "5"])
        outputs[backend] = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(outputs["mindspore"]) == 5
    for backend in ("onnx", "mindir"):
        for got, want in zip(outputs[backend], outputs["mindspore"]):
            assert got["label"] == want["label"]
            assert got["probability"] == pytest.approx(want["probability"], abs=1e-5)


def test_predict_refuses_a_model_file_that_does_not_fit_the_card_before_running(runs, model_files, tmp_path,
                                                                                 capfd, monkeypatch):
    monkeypatch.chdir(tmp_path)
    base = ["--load_finetune_checkpoint_path", runs["classifier"], "--input_file", runs["base"] / "texts.txt",
            "--output_file", tmp_path / "predictions.jsonl"]
    card_file = runs["classifier"] / "classifier.task.json"
    refused(predict.main, [*base, "--backend", "mindir", "--model_file", model_files["classifier_16"]],
            f"--model_file {model_files['classifier_16']} takes inputs of 16 tokens ([1, 16])",
            f"{card_file} has max_seq_length 32", "export.py --ckpt_file")
    refused(predict.main, [*base, "--backend", "mindir", "--model_file", model_files["three_classes"]],
            "returns 1 output(s) of shape [1, 3]", "classification model of", "returns [1, 2]",
            "exported from another model")
    refused(predict.main, [*base, "--backend", "onnx", "--model_file", model_files["ner"]],
            "returns 1 output(s) of shape [2, 32, 3]", "returns [2, 2]")
    refused(predict.main, [*base, "--backend", "onnx", "--model_file", model_files["classifier_batch3"]],
            "is a MindIR file but --backend is onnx: pass --backend mindir")
    refused(predict.main, [*base, "--backend", "mindir", "--model_file", tmp_path], "is a directory")
    (tmp_path / "empty.mindir").write_bytes(b"")
    (tmp_path / "garbage.onnx").write_bytes(b"garbage\n")
    refused(predict.main, [*base, "--backend", "mindir", "--model_file", tmp_path / "empty.mindir"],
            f"MindIR file {tmp_path / 'empty.mindir'} cannot be loaded")
    refused(predict.main, [*base, "--backend", "onnx", "--model_file", tmp_path / "garbage.onnx"],
            f"ONNX file {tmp_path / 'garbage.onnx'} cannot be loaded")
    err = capfd.readouterr().err
    assert "[ERROR]" not in err and "Traceback" not in err, err[-2000:]  # MindSpore's loader logged nothing
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.mindir", "garbage.onnx"]


# ---------------------------------------------------------------- B: checkpoint conversion says what is wrong


class Opaque:
    """An object torch.load(weights_only=True) will not rebuild."""


MARKER = Path(f"/tmp/test_model_shape_checks_{os.getpid()}_was_run")


class RunsCode:
    """Unpickling this would run a shell command (creating MARKER): it must never happen."""

    def __reduce__(self):
        return os.system, (f"touch {MARKER}",)


@pytest.fixture(scope="module")
def hf_small(tmp_path_factory):
    """SMALL saved by transformers as safetensors and as a PyTorch pickle, with its config.json."""
    directory = tmp_path_factory.mktemp("hf_small")
    torch.manual_seed(0)
    model = transformers.BertForPreTraining(transformers.BertConfig(**SMALL)).eval()
    model.save_pretrained(directory / "safetensors", safe_serialization=True)
    model.save_pretrained(directory / "bin", safe_serialization=False)
    return directory


def hf_dir(tmp_path: Path, hf_small: Path, name: str, weights: bytes | None = None,
           weights_name: str = "pytorch_model.bin", config: str | None = None) -> Path:
    directory = tmp_path / name
    directory.mkdir()
    (directory / "config.json").write_text(config if config is not None else
                                           (hf_small / "safetensors" / "config.json").read_text())
    source = hf_small / ("safetensors/model.safetensors" if weights_name.endswith("safetensors") else
                         "bin/pytorch_model.bin")
    (directory / weights_name).write_bytes(weights if weights is not None else source.read_bytes())
    return directory


def convert_refused(tmp_path: Path, directory: Path, *fragments, flags=("--from", "hf")) -> str:
    output = tmp_path / "out" / "model.ckpt"
    message = refused(convert_checkpoint.main, [*flags, "--input", directory, "--output", output], *fragments)
    assert not (tmp_path / "out").exists() and not leftovers(tmp_path)
    return message


@pytest.mark.parametrize("how", ["torch.save", "pickle protocol 4"])
def test_a_pytorch_bin_holding_code_is_refused_and_never_run(tmp_path, hf_small, how):
    weights = tmp_path / "weights.bin"
    payload = {"bert.embeddings.word_embeddings.weight": torch.zeros(2, 2), "opaque": Opaque(), "code": RunsCode()}
    if how == "torch.save":
        torch.save(payload, weights)
    else:
        weights.write_bytes(pickle.dumps(payload, protocol=4))
    directory = hf_dir(tmp_path, hf_small, "evil", weights.read_bytes())
    weights.unlink()
    message = convert_refused(tmp_path, directory, f"{directory / 'pytorch_model.bin'} holds objects other than "
                                                   f"tensors", "it was not loaded", "model.safetensors")
    if how == "torch.save":
        assert "test_model_shape_checks.Opaque" in message
    assert not MARKER.exists()


def test_a_pytorch_bin_holding_code_ends_in_one_line_on_the_command_line(tmp_path, hf_small):
    """As users run it: torch's warning about the pickle protocol does not precede the one line."""
    directory = hf_dir(tmp_path, hf_small, "evil", pickle.dumps({"code": RunsCode()}, protocol=4))
    result = run_script("tools/convert_checkpoint.py", "--from", "hf", "--input", directory, "--output",
                        tmp_path / "out" / "x.ckpt", cwd=tmp_path)
    one_line_failure(result, "convert_checkpoint.py", "holds objects other than tensors", "it was not loaded")
    assert not MARKER.exists() and not (tmp_path / "out").exists() and not leftovers(tmp_path)


def test_damaged_checkpoints_and_configs_are_named_with_the_fix(tmp_path, hf_small):
    pickle_bytes = (hf_small / "bin" / "pytorch_model.bin").read_bytes()
    safetensors_bytes = (hf_small / "safetensors" / "model.safetensors").read_bytes()
    truncated = hf_dir(tmp_path, hf_small, "truncated", pickle_bytes[:len(pickle_bytes) // 2])
    convert_refused(tmp_path, truncated, f"{truncated / 'pytorch_model.bin'} cannot be read as a PyTorch checkpoint",
                    "truncated or corrupt")
    corrupt = hf_dir(tmp_path, hf_small, "corrupt", safetensors_bytes[:len(safetensors_bytes) // 2],
                     "model.safetensors")
    convert_refused(tmp_path, corrupt, f"{corrupt / 'model.safetensors'} is not a readable safetensors file",
                    "download it again")
    empty = hf_dir(tmp_path, hf_small, "empty", b"")
    convert_refused(tmp_path, empty, f"{empty / 'pytorch_model.bin'} is empty")
    not_json = hf_dir(tmp_path, hf_small, "not_json", weights_name="model.safetensors", config="{vocab_size: 99")
    convert_refused(tmp_path, not_json, f"{not_json / 'config.json'} is not valid JSON", "pass --config")
    partial = hf_dir(tmp_path, hf_small, "partial", weights_name="model.safetensors",
                     config=json.dumps({"model_type": "bert", "hidden_size": 32}))
    convert_refused(tmp_path, partial, f"{partial / 'config.json'} lacks vocab_size, num_hidden_layers, "
                                       f"num_attention_heads, intermediate_size", "pass --config")
    a_list = hf_dir(tmp_path, hf_small, "a_list", weights_name="model.safetensors", config="[1, 2]")
    convert_refused(tmp_path, a_list, f"{a_list / 'config.json'} holds a JSON list")
    training_state = tmp_path / "training_state"
    training_state.mkdir()
    torch.save({"state_dict": {"w": torch.zeros(1)}, "epoch": 3}, training_state / "pytorch_model.bin")
    convert_refused(tmp_path, training_state, "holds entries that are not tensors (state_dict, epoch)")
    convert_refused(tmp_path, tmp_path / "no_such" / "bert_model.ckpt",
                    f"TensorFlow checkpoint {tmp_path / 'no_such' / 'bert_model.ckpt'} does not exist",
                    "bert_model.ckpt.index is missing", flags=("--from", "tf"))
    # the good files still convert: the pickle gives the safetensors' parameters; a bad config.json is not read
    # when --config is given
    for source in ("bin", "safetensors"):
        convert_checkpoint.main(["--from", "hf", "--input", str(hf_small / source), "--output",
                                 str(tmp_path / source / "model.ckpt")])
    from_bin, from_safetensors = (read_checkpoint(tmp_path / s / "model.ckpt") for s in ("bin", "safetensors"))
    assert sorted(from_bin) == sorted(from_safetensors)
    assert all(np.array_equal(from_bin[name], from_safetensors[name]) for name in from_bin)
    convert_checkpoint.main(["--from", "hf", "--input", str(not_json), "--config",
                             str(model_yaml(tmp_path, 99, 64, **{k: v for k, v in SMALL.items() if k != "vocab_size"})),
                             "--output", str(tmp_path / "ok" / "model.ckpt")])
    assert (tmp_path / "ok" / "model.ckpt").is_file()


def test_converting_a_finetuned_checkpoint_to_huggingface_says_what_it_is(runs, tmp_path):
    checkpoint = next(runs["classifier"].glob("*.ckpt"))
    output = tmp_path / "hf"
    refused(convert_checkpoint.main, ["--from", "ms", "--to", "hf", "--input", checkpoint, "--config",
                                      runs["classifier"] / "classifier.model.yaml", "--output", output],
            "has no pretraining heads (cls.*) but a finetuning head (classifier)", "use export.py")
    refused(convert_checkpoint.main, ["--from", "ms", "--to", "hf", "--input", runs["classifier"], "--config",
                                      runs["classifier"] / "classifier.model.yaml", "--output", output],
            f"--input {runs['classifier']} is a directory")
    refused(convert_checkpoint.main, ["--from", "hf", "--input", runs["classifier"], "--output", tmp_path / "x.bin"],
            "--output", "must end in .ckpt")
    assert not output.exists() and not (tmp_path / "x.bin").exists()
