"""Shared test helpers: small HuggingFace reference models and their conversion through tools/convert_checkpoint.py."""
from __future__ import annotations

from pathlib import Path

import mindspore as ms
import numpy as np
import torch

from src.bert_for_pre_training import BertForPreTraining
from src.checkpoint import load_checkpoint_into
from src.config import load_bert_config
from tools import convert_checkpoint

SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)


def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values in every parameter (HF initialises LayerNorm to 1/0 and biases to 0, which would hide bugs)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return model.eval()


def convert_hf(model: torch.nn.Module, tmp_path: Path) -> BertForPreTraining:
    """save_pretrained -> the converter CLI -> our network built from the YAML the converter wrote."""
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    ckpt = tmp_path / "converted.ckpt"
    convert_checkpoint.main(["--from", "hf", "--input", str(tmp_path / "hf"), "--output", str(ckpt)])
    network = BertForPreTraining(load_bert_config(ckpt.with_suffix(".yaml")))
    load_checkpoint_into(network, ckpt)
    network.set_train(False)
    return network


def make_batch(seed: int, batch: int, seq: int, vocab: int, lengths: list[int], n_masked: int) -> dict:
    """Random token ids with the given real lengths (padding after), segment B in the second half, masked slots."""
    rng = np.random.RandomState(seed)
    input_ids = rng.randint(1, vocab, (batch, seq)).astype(np.int32)
    input_mask = (np.arange(seq)[None, :] < np.array(lengths)[:, None]).astype(np.int32)
    input_ids *= input_mask
    token_type_ids = ((np.arange(seq)[None, :] >= np.array(lengths)[:, None] // 2) * input_mask).astype(np.int32)
    positions = np.stack([rng.choice(n, n_masked, replace=False) for n in lengths]).astype(np.int32)
    return dict(input_ids=input_ids, input_mask=input_mask, token_type_ids=token_type_ids,
                masked_lm_positions=positions,
                masked_lm_ids=rng.randint(0, vocab, (batch, n_masked)).astype(np.int32),
                masked_lm_weights=np.ones((batch, n_masked), np.float32),
                next_sentence_labels=rng.randint(0, 2, (batch, 1)).astype(np.int32))


def ms_outputs(network: BertForPreTraining, b: dict) -> dict[str, np.ndarray]:
    t = {k: ms.Tensor(v) for k, v in b.items()}
    sequence_output, pooled_output = network.bert(t["input_ids"], t["token_type_ids"], t["input_mask"])
    mlm, nsp = network(t["input_ids"], t["input_mask"], t["token_type_ids"], t["masked_lm_positions"])
    return dict(sequence=sequence_output.asnumpy(), pooled=pooled_output.asnumpy(), mlm=mlm.asnumpy(),
                nsp=nsp.asnumpy())


def torch_inputs(b: dict) -> dict[str, torch.Tensor]:
    return dict(input_ids=torch.tensor(b["input_ids"], dtype=torch.long),
                attention_mask=torch.tensor(b["input_mask"], dtype=torch.long),
                token_type_ids=torch.tensor(b["token_type_ids"], dtype=torch.long))


def hf_mlm_labels(b: dict) -> torch.Tensor:
    """HF labels: the masked_lm_ids at masked_lm_positions, -100 (ignored) elsewhere."""
    labels = np.full(b["input_ids"].shape, -100, np.int64)
    for row, (positions, ids) in enumerate(zip(b["masked_lm_positions"], b["masked_lm_ids"])):
        labels[row, positions] = ids
    return torch.tensor(labels)


def gather_hf_mlm(prediction_logits: torch.Tensor, b: dict) -> np.ndarray:
    rows = np.repeat(np.arange(len(b["masked_lm_positions"])), b["masked_lm_positions"].shape[1])
    return prediction_logits.detach().numpy()[rows, b["masked_lm_positions"].reshape(-1)]
