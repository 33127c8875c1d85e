"""Checkpoint conversion: round trips, HuggingFace export, Google TF names, model-zoo names."""
import sys
import types

import numpy as np
import pytest
import torch
import transformers

from src.config import load_bert_config, save_bert_config
from src.files.checkpoint import read_checkpoint, write_checkpoint
from src.model.conversion import ms_to_tf, ms_to_zoo, tf_to_ms, zoo_to_ms
from src.model.pretraining import BertForPreTraining
from tests.helpers import SMALL, convert_hf, make_batch, ms_outputs, perturb_, torch_inputs
from tools import convert_checkpoint

pytestmark = pytest.mark.reference


@pytest.fixture(scope="module")
def hf_and_ours(tmp_path_factory):
    torch.manual_seed(1)
    hf = perturb_(transformers.BertForPreTraining(transformers.BertConfig(**SMALL, attn_implementation="eager")), 1)
    return hf, convert_hf(hf, tmp_path_factory.mktemp("hf"))


def params_of(network):
    return {p.name: p.asnumpy() for p in network.get_parameters()}


def test_mindspore_to_huggingface_to_mindspore_is_bit_identical(hf_and_ours, tmp_path):
    _, ours = hf_and_ours
    write_checkpoint(ours, tmp_path / "ours.ckpt")
    config_yaml = str(save_bert_config(ours.bert.config, tmp_path / "config.yaml"))
    convert_checkpoint.main(["--from", "ms", "--to", "hf", "--input", str(tmp_path / "ours.ckpt"),
                             "--config", config_yaml, "--output", str(tmp_path / "exported")])
    convert_checkpoint.main(["--from", "hf", "--input", str(tmp_path / "exported"), "--output",
                             str(tmp_path / "back.ckpt")])
    before, after = params_of(ours), read_checkpoint(tmp_path / "back.ckpt")
    assert sorted(before) == sorted(after)
    for name, value in before.items():
        assert after[name].dtype == value.dtype and np.array_equal(after[name], value), name


def test_exported_directory_loads_in_transformers_with_same_outputs(hf_and_ours, tmp_path):
    _, ours = hf_and_ours
    write_checkpoint(ours, tmp_path / "ours.ckpt")
    convert_checkpoint.main(["--from", "ms", "--to", "hf", "--input", str(tmp_path / "ours.ckpt"),
                             "--config", str(save_bert_config(ours.bert.config, tmp_path / "config.yaml")),
                             "--output", str(tmp_path / "exported")])
    reloaded = transformers.BertForPreTraining.from_pretrained(tmp_path / "exported", attn_implementation="eager")
    batch = make_batch(7, 2, 12, SMALL["vocab_size"], [12, 8], n_masked=2)
    with torch.no_grad():
        sequence = reloaded.bert(**torch_inputs(batch)).last_hidden_state.numpy()
    np.testing.assert_allclose(ms_outputs(ours, batch)["sequence"], sequence, atol=1e-4, rtol=0)


def test_google_tf_names_are_the_ones_transformers_reads(hf_and_ours, monkeypatch):
    """Our TF mapping, fed through transformers' own TF loader (a dict stands in for the TF checkpoint),
    rebuilds every weight of the HF model; and TF -> ours is the exact inverse."""
    hf, ours = hf_and_ours
    tf_arrays = ms_to_tf(params_of(ours))
    tf_arrays["bert/encoder/layer_0/attention/self/query/kernel/adam_m"] = np.zeros(1)  # optimizer state: skipped
    fake_tf = types.SimpleNamespace(train=types.SimpleNamespace(
        list_variables=lambda path: [(name, value.shape) for name, value in tf_arrays.items()],
        load_variable=lambda path, name: tf_arrays[name]))
    monkeypatch.setitem(sys.modules, "tensorflow", fake_tf)
    target = transformers.BertForPreTraining(hf.config)
    with torch.no_grad():
        for parameter in target.parameters():
            parameter.zero_()
    transformers.models.bert.modeling_bert.load_tf_weights_in_bert(target, hf.config, "unused")
    expected = hf.state_dict()
    for name, value in target.state_dict().items():
        assert torch.equal(value, expected[name]), name
    back = tf_to_ms(tf_arrays)
    assert sorted(back) == sorted(params_of(ours))
    assert all(np.array_equal(back[name], value) for name, value in params_of(ours).items())


ZOO_NAMES_ONE_LAYER = [  # as the MindSpore model zoo's BERT writes them (its tf->ms table, newer releases)
    "bert.bert.bert_embedding_lookup.embedding_table",
    "bert.bert.bert_embedding_postprocessor.token_type_embedding.embedding_table",
    "bert.bert.bert_embedding_postprocessor.full_position_embedding.embedding_table",
    "bert.bert.bert_embedding_postprocessor.layernorm.gamma",
    "bert.bert.bert_embedding_postprocessor.layernorm.beta",
    *[f"bert.bert.bert_encoder.layers.0.attention.attention.{n}_layer.{leaf}"
      for n in ("query", "key", "value") for leaf in ("weight", "bias")],
    "bert.bert.bert_encoder.layers.0.attention.output.dense.weight",
    "bert.bert.bert_encoder.layers.0.attention.output.dense.bias",
    "bert.bert.bert_encoder.layers.0.attention.output.layernorm.gamma",
    "bert.bert.bert_encoder.layers.0.attention.output.layernorm.beta",
    "bert.bert.bert_encoder.layers.0.intermediate.weight",
    "bert.bert.bert_encoder.layers.0.intermediate.bias",
    "bert.bert.bert_encoder.layers.0.output.dense.weight",
    "bert.bert.bert_encoder.layers.0.output.dense.bias",
    "bert.bert.bert_encoder.layers.0.output.layernorm.gamma",
    "bert.bert.bert_encoder.layers.0.output.layernorm.beta",
    "bert.bert.dense.weight", "bert.bert.dense.bias",
    "bert.cls1.dense.weight", "bert.cls1.dense.bias", "bert.cls1.layernorm.gamma", "bert.cls1.layernorm.beta",
    "bert.cls1.output_bias", "bert.cls2.dense.weight", "bert.cls2.dense.bias",
]


def test_model_zoo_names():
    network = BertForPreTraining(load_bert_config("tiny", vocab_size=30, num_hidden_layers=1))
    ours = params_of(network)
    zoo = ms_to_zoo(ours)
    assert sorted(zoo) == sorted(ZOO_NAMES_ONE_LAYER)
    back, skipped = zoo_to_ms({**zoo, "moments.bert.bert.dense.weight": np.zeros(1), "global_step": np.zeros(1)})
    assert skipped == ["moments.bert.bert.dense.weight", "global_step"]
    assert sorted(back) == sorted(ours) and all(np.array_equal(back[n], v) for n, v in ours.items())


def test_model_zoo_older_names_and_learned_relative_table():
    config = load_bert_config("nezha-zoo", vocab_size=30, hidden_size=32, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=40)
    ours = params_of(BertForPreTraining(config))
    zoo = ms_to_zoo(ours)
    table = ("bert.bert.bert_encoder.layers.0.attention.attention._generate_relative_positions_embeddings."
             "embeddings_table")
    assert zoo[table].shape == (33, 16)
    older = dict(zoo)
    older["bert.bert.bert_embedding_postprocessor.embedding_table"] = older.pop(
        "bert.bert.bert_embedding_postprocessor.token_type_embedding.embedding_table")
    back, skipped = zoo_to_ms(older)
    assert skipped == [] and sorted(back) == sorted(ours)


def test_zoo_checkpoint_file_converts_through_the_cli(tmp_path, capsys):
    config = load_bert_config("nezha-zoo", vocab_size=30, hidden_size=32, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=40)
    ours = params_of(BertForPreTraining(config))
    write_checkpoint({**ms_to_zoo(ours), "global_step": np.array([5], np.int32)}, tmp_path / "zoo.ckpt")
    save_bert_config(config, tmp_path / "cfg.yaml")
    convert_checkpoint.main(["--from", "zoo", "--input", str(tmp_path / "zoo.ckpt"), "--config",
                             str(tmp_path / "cfg.yaml"), "--output", str(tmp_path / "ours.ckpt")])
    assert "left out 1 entries" in capsys.readouterr().out
    converted = read_checkpoint(tmp_path / "ours.ckpt")
    assert all(np.array_equal(converted[n], v) for n, v in ours.items())


def test_learned_relative_positions_cannot_be_exported_to_huggingface(tmp_path):
    config = load_bert_config("nezha-zoo", vocab_size=30, hidden_size=32, num_hidden_layers=1,
                              num_attention_heads=2, intermediate_size=40)
    write_checkpoint(BertForPreTraining(config), tmp_path / "zoo_style.ckpt")
    save_bert_config(config, tmp_path / "cfg.yaml")
    with pytest.raises(SystemExit, match="^convert_checkpoint.py: .*learned relative positions"):
        convert_checkpoint.main(["--from", "ms", "--to", "hf", "--input", str(tmp_path / "zoo_style.ckpt"),
                                 "--config", str(tmp_path / "cfg.yaml"), "--output", str(tmp_path / "hf")])


def test_pytorch_bin_of_a_bare_bert_model_converts_with_fresh_heads(hf_and_ours, tmp_path, capsys):
    """bert-base-chinese style: a BertModel pickle (no `bert.` prefix, no heads) -> heads freshly initialised."""
    hf, ours = hf_and_ours
    hf.bert.save_pretrained(tmp_path / "bare", safe_serialization=False)
    assert (tmp_path / "bare" / "pytorch_model.bin").is_file()
    missing = r"^convert_checkpoint.py: .*parameter 'cls.predictions.bias' \(99,\) is missing from the checkpoint"
    with pytest.raises(SystemExit, match=missing):
        convert_checkpoint.main(["--from", "hf", "--input", str(tmp_path / "bare"), "--output",
                                 str(tmp_path / "x.ckpt")])
    convert_checkpoint.main(["--from", "hf", "--input", str(tmp_path / "bare"), "--output", str(tmp_path / "x.ckpt"),
                             "--allow_missing_heads"])
    converted = read_checkpoint(tmp_path / "x.ckpt")
    for name, value in params_of(ours).items():
        if name.startswith("bert."):
            assert np.array_equal(converted[name], value), name
