"""Presets, fp16 compute, checkpoint files and the one-line errors for bad input."""
import mindspore as ms
import numpy as np
import pytest

from src.config import known_presets, load_bert_config
from src.files import checkpoint
from src.files.checkpoint import load_checkpoint_into, read_checkpoint, write_checkpoint
from src.model.bert import BertModel
from src.model.pretraining import BertForPreTraining
from tests.helpers import make_batch

SMALL_TINY = dict(vocab_size=40, hidden_size=32, num_attention_heads=4, intermediate_size=48)


def test_presets_describe_the_documented_models():
    assert known_presets() == ["base", "base-en", "large", "nezha-base", "nezha-large", "nezha-tiny", "nezha-zoo",
                               "tiny"]
    base = load_bert_config("base")
    assert (base.num_hidden_layers, base.hidden_size, base.num_attention_heads, base.intermediate_size,
            base.seq_length, base.vocab_size) == (12, 768, 12, 3072, 128, 21128)
    assert load_bert_config("base-en").vocab_size == 30522
    large = load_bert_config("large")
    assert (large.num_hidden_layers, large.hidden_size, large.num_attention_heads, large.intermediate_size) == \
        (24, 1024, 16, 4096)
    for name, kind, max_rel in [("nezha-base", "functional", 64), ("nezha-large", "functional", 64),
                                ("nezha-tiny", "functional", 64), ("nezha-zoo", "learned", 16)]:
        nezha = load_bert_config(name)
        assert (nezha.use_relative_positions, nezha.relative_position_type, nezha.max_relative_position) == \
            (True, kind, max_rel)
    assert load_bert_config("nezha-large").num_hidden_layers == 24
    tiny, nezha_tiny = load_bert_config("tiny"), load_bert_config("nezha-tiny")
    assert nezha_tiny == tiny.replace(use_relative_positions=True)  # the tiny shape, relative positions


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown model preset 'bert-huge': known presets are base, base-en, large"):
        load_bert_config("bert-huge")


def test_unknown_yaml_field_names_the_file_and_field(tmp_path):
    path = tmp_path / "typo.yaml"
    path.write_text("hidden_size: 64\nnum_hiden_layers: 2\n")
    with pytest.raises(ValueError, match=r"typo.yaml: unknown BertConfig field\(s\) num_hiden_layers"):
        load_bert_config(path)


def test_fp16_compute_stays_close_to_fp32():
    """float16 matmuls with float32 LayerNorm/softmax: outputs (unit-scale after LayerNorm) within 1e-2."""
    fp32 = BertModel(load_bert_config("tiny", **SMALL_TINY))
    fp16 = BertModel(load_bert_config("tiny", **SMALL_TINY, compute_type="float16"))
    for target, source in zip(fp16.get_parameters(), fp32.get_parameters()):
        target.set_data(source.data)
    fp32.set_train(False)
    fp16.set_train(False)
    b = make_batch(0, 2, 16, 40, [16, 9], n_masked=2)
    inputs = [ms.Tensor(b[k]) for k in ("input_ids", "token_type_ids", "input_mask")]
    seq32, pooled32 = fp32(*inputs)
    seq16, pooled16 = fp16(*inputs)
    assert seq16.dtype == ms.float32
    difference = np.abs(seq16.asnumpy() - seq32.asnumpy()).max()
    assert 0 < difference < 1e-2
    assert np.abs(pooled16.asnumpy() - pooled32.asnumpy()).max() < 1e-2


def test_checkpoint_round_trip_is_bit_identical(tmp_path):
    network = BertForPreTraining(load_bert_config("tiny", **SMALL_TINY))
    path = write_checkpoint(network, tmp_path / "model.ckpt")
    fresh = BertForPreTraining(load_bert_config("tiny", **SMALL_TINY))
    assert load_checkpoint_into(fresh, path) == []
    for a, b in zip(network.get_parameters(), fresh.get_parameters()):
        assert np.array_equal(a.asnumpy(), b.asnumpy()), a.name


def test_shape_mismatch_names_the_first_parameter_and_both_shapes(tmp_path):
    path = write_checkpoint(BertForPreTraining(load_bert_config("tiny", **SMALL_TINY)), tmp_path / "small.ckpt")
    other = BertForPreTraining(load_bert_config("tiny", **{**SMALL_TINY, "vocab_size": 50}))
    with pytest.raises(ValueError) as error:
        load_checkpoint_into(other, path)
    message = str(error.value)
    assert "\n" not in message
    assert "small.ckpt" in message
    assert "'bert.embeddings.word_embeddings.weight' has shape (40, 32) in the checkpoint but (50, 32) in the model" \
        in message


def test_missing_parameter_is_named(tmp_path):
    path = write_checkpoint(BertForPreTraining(load_bert_config("tiny", **SMALL_TINY)), tmp_path / "bert.ckpt")
    nezha = BertForPreTraining(load_bert_config("tiny", **SMALL_TINY, use_relative_positions=True,
                                                relative_position_type="learned", max_relative_position=4))
    with pytest.raises(ValueError, match=r"bert.ckpt: parameter "
                                         r"'bert.encoder.layer.0.attention.self.relative_positions.weight' \(9, 8\) "
                                         r"is missing from the checkpoint"):
        load_checkpoint_into(nezha, path)


def test_missing_and_corrupt_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"checkpoint .*nowhere.ckpt does not exist"):
        read_checkpoint(tmp_path / "nowhere.ckpt")
    path = write_checkpoint(BertForPreTraining(load_bert_config("tiny", **SMALL_TINY)), tmp_path / "cut.ckpt")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"checkpoint .*cut.ckpt cannot be read .*corrupt"):
        read_checkpoint(path)


def test_interrupted_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    network = BertForPreTraining(load_bert_config("tiny", **SMALL_TINY))
    path = write_checkpoint(network, tmp_path / "model.ckpt")
    before = path.read_bytes()

    def dies_halfway(save_obj, file_name, *args, **kwargs):
        with open(file_name, "wb") as handle:
            handle.write(b"half a checkpoint")
        raise KeyboardInterrupt

    monkeypatch.setattr(checkpoint.ms, "save_checkpoint", dies_halfway)
    with pytest.raises(KeyboardInterrupt):
        write_checkpoint(network, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.ckpt"]
