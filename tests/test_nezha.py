"""NEZHA relative positions: `functional` equals HuggingFace's NezhaForPreTraining; `learned` equals the formula
written out in numpy below."""
import mindspore as ms
import numpy as np
import pytest
import torch
from transformers.models.deprecated.nezha import NezhaConfig, NezhaForPreTraining

from src.config import load_bert_config
from src.model.bert import BertModel
from tests.helpers import SMALL, convert_hf, gather_hf_mlm, make_batch, ms_outputs, perturb_, torch_inputs

pytestmark = pytest.mark.reference

ATOL = 1e-4


@pytest.fixture(scope="module")
def nezha(tmp_path_factory):
    torch.manual_seed(0)
    # max_relative_position 5 < seq 16, so clipping of long distances is exercised.
    config = NezhaConfig(**SMALL, max_relative_position=5)
    hf = perturb_(NezhaForPreTraining(config))
    return hf, convert_hf(hf, tmp_path_factory.mktemp("nezha"))


def test_converted_nezha_has_no_absolute_positions(nezha):
    _, ours = nezha
    names = [p.name for p in ours.get_parameters()]
    assert not [n for n in names if "position" in n]
    assert ours.bert.config.use_relative_positions and ours.bert.config.relative_position_type == "functional"
    assert ours.bert.config.max_relative_position == 5


@pytest.mark.parametrize("lengths", [[16, 16], [16, 7]], ids=["no_padding", "padding"])
def test_functional_matches_huggingface_nezha(nezha, lengths):
    hf, ours = nezha
    batch = make_batch(4, 2, 16, SMALL["vocab_size"], lengths, n_masked=3)
    with torch.no_grad():
        reference = hf(**torch_inputs(batch), output_hidden_states=True)
        pooled = hf.nezha.pooler(reference.hidden_states[-1])
    got = ms_outputs(ours, batch)
    np.testing.assert_allclose(got["sequence"], reference.hidden_states[-1].numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got["pooled"], pooled.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got["mlm"], gather_hf_mlm(reference.prediction_logits, batch), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got["nsp"], reference.seq_relationship_logits.numpy(), atol=ATOL, rtol=0)


# ---------------------------------------------------------------- learned: an independent numpy reference

def _layer_norm(x, weight, bias, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x):
    from scipy.special import erf
    return 0.5 * x * (1.0 + erf(x / np.sqrt(2.0)))


def numpy_nezha_learned(p, config, input_ids, token_type_ids, input_mask):
    """Shaw et al. / NEZHA relative attention with one learned table per layer, loop over heads and pairs:
    e_ij = (q_i . k_j + q_i . a_ij) / sqrt(d),  z_i = sum_j softmax(e)_ij (v_j + a_ij),  a_ij = W[clip(j-i)+M]."""
    eps, heads, d, max_rel = (config.layer_norm_eps, config.num_attention_heads, config.head_size,
                              config.max_relative_position)
    x = (p["bert.embeddings.word_embeddings.weight"][input_ids]
         + p["bert.embeddings.token_type_embeddings.weight"][token_type_ids])
    x = _layer_norm(x, p["bert.embeddings.LayerNorm.weight"], p["bert.embeddings.LayerNorm.bias"], eps)
    batch, seq, _ = x.shape
    dense = lambda h, name: h @ p[name + ".weight"].T + p[name + ".bias"]  # noqa: E731
    for layer in range(config.num_hidden_layers):
        pre = f"bert.encoder.layer.{layer}."
        q, k, v = (dense(x, pre + f"attention.self.{n}") for n in ("query", "key", "value"))
        table = p[pre + "attention.self.relative_positions.weight"]
        context = np.zeros_like(x)
        for b in range(batch):
            for h in range(heads):
                cols = slice(h * d, (h + 1) * d)
                scores = np.zeros((seq, seq))
                for i in range(seq):
                    for j in range(seq):
                        a_ij = table[np.clip(j - i, -max_rel, max_rel) + max_rel]
                        scores[i, j] = (q[b, i, cols] @ k[b, j, cols] + q[b, i, cols] @ a_ij) / np.sqrt(d)
                scores += (1 - input_mask[b])[None, :] * -10000.0
                probs = np.exp(scores - scores.max(-1, keepdims=True))
                probs /= probs.sum(-1, keepdims=True)
                for i in range(seq):
                    for j in range(seq):
                        a_ij = table[np.clip(j - i, -max_rel, max_rel) + max_rel]
                        context[b, i, cols] += probs[i, j] * (v[b, j, cols] + a_ij)
        x = _layer_norm(dense(context, pre + "attention.output.dense") + x,
                        p[pre + "attention.output.LayerNorm.weight"], p[pre + "attention.output.LayerNorm.bias"], eps)
        ffn = dense(_gelu(dense(x, pre + "intermediate.dense")), pre + "output.dense")
        x = _layer_norm(ffn + x, p[pre + "output.LayerNorm.weight"], p[pre + "output.LayerNorm.bias"], eps)
    pooled = np.tanh(dense(x[:, 0], "bert.pooler.dense"))
    return x, pooled


def test_learned_matches_numpy_formula():
    config = load_bert_config("tiny", vocab_size=50, hidden_size=16, num_attention_heads=2, intermediate_size=24,
                              use_relative_positions=True, relative_position_type="learned",
                              max_relative_position=3, layer_norm_eps=1e-7)
    model = BertModel(config)
    model.set_train(False)
    rng = np.random.RandomState(0)
    for parameter in model.get_parameters():  # non-trivial LayerNorm and bias values
        parameter.set_data(ms.Tensor(parameter.asnumpy() + 0.1 * rng.randn(*parameter.shape).astype(np.float32)))
    params = {("bert." + p.name): p.asnumpy().astype(np.float64) for p in model.get_parameters()}
    assert params["bert.encoder.layer.0.attention.self.relative_positions.weight"].shape == (7, 8)
    batch = make_batch(5, 2, 9, 50, [9, 6], n_masked=2)
    sequence, pooled = model(ms.Tensor(batch["input_ids"]), ms.Tensor(batch["token_type_ids"]),
                             ms.Tensor(batch["input_mask"]))
    ref_sequence, ref_pooled = numpy_nezha_learned(params, config, batch["input_ids"], batch["token_type_ids"],
                                                   batch["input_mask"])
    np.testing.assert_allclose(sequence.asnumpy(), ref_sequence, atol=1e-4, rtol=0)
    np.testing.assert_allclose(pooled.asnumpy(), ref_pooled, atol=1e-4, rtol=0)
