"""BertForPreTraining equals HuggingFace's, converted through tools/convert_checkpoint.py (fp32, eval mode)."""
import mindspore as ms
import numpy as np
import pytest
import torch
import transformers

from src.files.checkpoint import load_into
from src.model.pretraining import BertNetworkWithLoss
from tests.helpers import (
    SMALL,
    convert_hf,
    gather_hf_mlm,
    hf_mlm_labels,
    make_batch,
    ms_outputs,
    perturb_,
    torch_inputs,
)

pytestmark = pytest.mark.reference

ATOL = 1e-4
LENGTHS = {"no_padding": [16, 16, 16], "padding": [16, 11, 5]}
RECORD_ORDER = ("input_ids", "input_mask", "token_type_ids", "next_sentence_labels", "masked_lm_positions",
                "masked_lm_ids", "masked_lm_weights")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    torch.manual_seed(0)
    config = transformers.BertConfig(**SMALL, attn_implementation="eager")
    hf = perturb_(transformers.BertForPreTraining(config))
    return hf, convert_hf(hf, tmp_path_factory.mktemp("bert"))


@pytest.mark.parametrize("padding", sorted(LENGTHS))
def test_outputs_match_huggingface(models, padding):
    hf, ours = models
    batch = make_batch(1, 3, 16, SMALL["vocab_size"], LENGTHS[padding], n_masked=4)
    with torch.no_grad():
        reference = hf(**torch_inputs(batch), output_hidden_states=True)
        pooled = hf.bert.pooler(reference.hidden_states[-1])
    got = ms_outputs(ours, batch)
    np.testing.assert_allclose(got["sequence"], reference.hidden_states[-1].numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got["pooled"], pooled.numpy(), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got["mlm"], gather_hf_mlm(reference.prediction_logits, batch), atol=ATOL, rtol=0)
    np.testing.assert_allclose(got["nsp"], reference.seq_relationship_logits.numpy(), atol=ATOL, rtol=0)


def test_padding_changes_nothing_for_real_tokens(models):
    """The mask is honoured: a sequence padded with junk gives the same outputs on its real tokens."""
    _, ours = models
    batch = make_batch(2, 1, 16, SMALL["vocab_size"], [9], n_masked=3)
    junk = dict(batch, input_ids=batch["input_ids"].copy())
    junk["input_ids"][0, 9:] = 7
    a, b = ms_outputs(ours, batch), ms_outputs(ours, junk)
    np.testing.assert_allclose(a["sequence"][0, :9], b["sequence"][0, :9], atol=1e-6)
    assert np.abs(a["sequence"][0, 9:] - b["sequence"][0, 9:]).max() > 1e-3


def with_loss_of(ours) -> BertNetworkWithLoss:
    """The converted model inside the pretraining loss network, in eval mode (no dropout)."""
    with_loss = BertNetworkWithLoss(ours.bert.config)
    load_into(with_loss, {p.name: p.asnumpy() for p in ours.get_parameters()}, "converted model")
    with_loss.set_train(False)
    return with_loss


def hf_pretraining_loss(hf, batch: dict) -> torch.Tensor:
    return hf(**torch_inputs(batch), labels=hf_mlm_labels(batch),
              next_sentence_label=torch.tensor(batch["next_sentence_labels"][:, 0], dtype=torch.long)).loss


def record_tensors(batch: dict) -> list[ms.Tensor]:
    return [ms.Tensor(batch[name]) for name in RECORD_ORDER]


def test_pretraining_loss_matches_huggingface(models):
    hf, ours = models
    batch = make_batch(3, 3, 16, SMALL["vocab_size"], LENGTHS["padding"], n_masked=4)
    loss = with_loss_of(ours)(*record_tensors(batch)).asnumpy()
    with torch.no_grad():
        reference = hf_pretraining_loss(hf, batch)
    assert loss == pytest.approx(reference.item(), abs=ATOL)


def test_pretraining_gradients_match_huggingface(models):
    """Every parameter's gradient of the pretraining loss equals torch autograd's on HF's model: the backward pass,
    custom bprops included (GELU, bias add), and the tied decoder weight and bias."""
    hf, ours = models
    batch = make_batch(4, 3, 16, SMALL["vocab_size"], LENGTHS["padding"], n_masked=4)
    with_loss = with_loss_of(ours)  # eval mode: no dropout on either side; gradients still flow
    weights = ms.ParameterTuple(with_loss.trainable_params())
    grads = ms.ops.GradOperation(get_by_list=True)(with_loss, weights)(*record_tensors(batch))
    hf.zero_grad()
    hf_pretraining_loss(hf, batch).backward()
    compared = 0
    for parameter, grad in zip(weights, grads):
        expected = hf.get_parameter(parameter.name).grad.numpy()
        np.testing.assert_allclose(grad.asnumpy(), expected, atol=1e-5 + 1e-3 * np.abs(expected).max(), rtol=0,
                                   err_msg=parameter.name)
        compared += 1
    assert compared == len(list(hf.parameters()))  # each of HF's (parameters() counts tied ones once)


@pytest.mark.parametrize("width", [16, 768])
def test_host_layer_norm_gradient_equals_torch(width):
    """On CPU the LayerNorm gradient is a numpy kernel (src/model/kernels/layer_norm.py): x, weight and bias gradients
    against torch autograd's, at a small width and BERT-base's, with a weight and bias that are not 1 and 0."""
    from mindspore import Tensor, ops

    from src.model.kernels.layer_norm import LayerNorm
    rng = np.random.default_rng(width)
    x = (rng.normal(size=(3, 5, width)) * 4 + 2).astype(np.float32)
    dy = rng.normal(size=x.shape).astype(np.float32)
    layer = LayerNorm(width, 1e-12, on_host=True)
    layer.weight.set_data(Tensor(rng.normal(size=width).astype(np.float32)))
    layer.bias.set_data(Tensor(rng.normal(size=width).astype(np.float32)))
    grads = ms.jit(ops.GradOperation(get_all=True, get_by_list=True, sens_param=True)(layer, layer.trainable_params()))
    (dx,), (dweight, dbias) = grads(Tensor(x), Tensor(dy))
    reference = torch.nn.LayerNorm(width, eps=1e-12)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.weight.asnumpy()))
        reference.bias.copy_(torch.from_numpy(layer.bias.asnumpy()))
    inputs = torch.from_numpy(x).requires_grad_()
    reference(inputs).backward(torch.from_numpy(dy))
    for ours, theirs in ((dx, inputs.grad), (dweight, reference.weight.grad), (dbias, reference.bias.grad)):
        np.testing.assert_allclose(ours.asnumpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)
