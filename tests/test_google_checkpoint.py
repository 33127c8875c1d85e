"""Checkpoints written by TensorFlow in Google's layout: a real one (Google's modeling.py and run_pretraining.py
heads, saved by tf.train.Saver) converts with Google's outputs, and ours converts back into one that Google's code
restores. Google's side runs in its own process (tests/google_bert.py), and so does the converter when it imports
TensorFlow (its protos clash with the tfrecord package's, which other tests load into this process)."""
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy.special import log_softmax

from src.config import load_bert_config
from src.files.checkpoint import load_checkpoint_into, read_checkpoint
from src.model.pretraining import BertForPreTraining
from tests import google_bert
from tests.helpers import ROOT, ms_outputs
from tools import convert_checkpoint

pytestmark = [pytest.mark.slow, pytest.mark.reference]


def convert(*flags):
    """tools/convert_checkpoint.py in a fresh process, as a user runs it."""
    result = subprocess.run([sys.executable, str(ROOT / "tools" / "convert_checkpoint.py"), *map(str, flags)],
                            capture_output=True, text=True, env={**os.environ, "GLOG_v": "3"})
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.fixture(scope="module")
def google_checkpoint(tmp_path_factory):
    directory = tmp_path_factory.mktemp("google")
    google_bert.run("checkpoint", directory)
    return directory


def ours_from_tf(checkpoint, output):
    convert("--from", "tf", "--input", checkpoint, "--output", output)
    network = BertForPreTraining(load_bert_config(output.with_suffix(".yaml")))
    load_checkpoint_into(network, output)
    return network


def assert_google_outputs(network, inputs, google):
    ours = ms_outputs(network, inputs)
    assert np.abs(ours["sequence"] - google["sequence_output"]).max() < 1e-4
    assert np.abs(ours["pooled"] - google["pooled_output"]).max() < 1e-4
    assert np.abs(log_softmax(ours["mlm"], axis=-1) - google["mlm_log_probs"]).max() < 1e-4
    assert np.abs(log_softmax(ours["nsp"], axis=-1) - google["nsp_log_probs"]).max() < 1e-4


def test_tensorflow_checkpoint_converts_with_googles_outputs(google_checkpoint, tmp_path):
    network = ours_from_tf(google_checkpoint / "bert_model.ckpt", tmp_path / "ours.ckpt")
    assert load_bert_config(tmp_path / "ours.yaml").hidden_act == "gelu_tanh"  # Google's "gelu" is the tanh form
    assert_google_outputs(network, dict(np.load(google_checkpoint / "inputs.npz")),
                          np.load(google_checkpoint / "outputs.npz"))


def test_mindspore_to_tensorflow_to_mindspore_is_bit_identical(google_checkpoint, tmp_path):
    ours_from_tf(google_checkpoint / "bert_model.ckpt", tmp_path / "ours.ckpt")
    exported = tmp_path / "tf" / "bert_model.ckpt"
    convert("--from", "ms", "--to", "tf", "--input", tmp_path / "ours.ckpt", "--config", tmp_path / "ours.yaml",
            "--output", exported)
    # Google's graph restores every one of its variables from our file and computes the same outputs.
    google_bert.run("restore", exported, google_checkpoint / "inputs.npz", tmp_path / "restored.npz")
    expected, restored = np.load(google_checkpoint / "outputs.npz"), np.load(tmp_path / "restored.npz")
    for name in expected:
        np.testing.assert_array_equal(restored[name], expected[name])
    ours_from_tf(exported, tmp_path / "back.ckpt")
    first, second = read_checkpoint(tmp_path / "ours.ckpt"), read_checkpoint(tmp_path / "back.ckpt")
    assert sorted(first) == sorted(second)
    for name, value in first.items():
        assert value.dtype == second[name].dtype and np.array_equal(value, second[name]), name


def test_export_to_tensorflow_never_replaces_a_file(google_checkpoint, tmp_path):
    ours_from_tf(google_checkpoint / "bert_model.ckpt", tmp_path / "ours.ckpt")
    config = tmp_path / "bert_config.json"
    config.write_text("mine")
    with pytest.raises(SystemExit, match="bert_config.json already exist.*pick another --output"):
        convert_checkpoint.main(["--from", "ms", "--to", "tf", "--input", str(tmp_path / "ours.ckpt"),
                                 "--config", str(tmp_path / "ours.yaml"), "--output", str(tmp_path / "x.ckpt")])
    assert config.read_text() == "mine" and not list(tmp_path.glob("x.ckpt*"))
