"""Shared test helpers: the repository's paths, small HuggingFace reference models and their conversion through
tools/convert_checkpoint.py, and the finetuning and pretraining runs the fixtures and tests make on shipped data."""
from __future__ import annotations

import json
import random
from pathlib import Path
from typing import TYPE_CHECKING

import mindspore as ms
import numpy as np

from src.config import load_bert_config
from src.files.checkpoint import load_checkpoint_into
from src.model.pretraining import BertForPreTraining
from tools import convert_checkpoint

if TYPE_CHECKING:
    import torch

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
TINY = str(ROOT / "configs" / "finetune_tiny.yaml")  # the tiny finetuning run config

SMALL = dict(vocab_size=99, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
             max_position_embeddings=64, type_vocab_size=2, hidden_dropout_prob=0.0,
             attention_probs_dropout_prob=0.0)


class PadsToMax:
    """The Backend protocol's length members (src/serve/backends.py) for a test backend that pads every batch to
    max_seq_length, as a fixed-shape graph does."""

    compiles_per_shape = False

    def sequence_length(self, longest: int, max_seq_length: int) -> int:
        return max_seq_length


def perturb_(model: torch.nn.Module, seed: int = 0) -> torch.nn.Module:
    """Random values in every parameter (HF initialises LayerNorm to 1/0 and biases to 0, which would hide bugs)."""
    import torch
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
    import torch
    return dict(input_ids=torch.tensor(b["input_ids"], dtype=torch.long),
                attention_mask=torch.tensor(b["input_mask"], dtype=torch.long),
                token_type_ids=torch.tensor(b["token_type_ids"], dtype=torch.long))


def hf_mlm_labels(b: dict) -> torch.Tensor:
    """HF labels: the masked_lm_ids at masked_lm_positions, -100 (ignored) elsewhere."""
    import torch
    labels = np.full(b["input_ids"].shape, -100, np.int64)
    for row, (positions, ids) in enumerate(zip(b["masked_lm_positions"], b["masked_lm_ids"])):
        labels[row, positions] = ids
    return torch.tensor(labels)


def gather_hf_mlm(prediction_logits: torch.Tensor, b: dict) -> np.ndarray:
    rows = np.repeat(np.arange(len(b["masked_lm_positions"])), b["masked_lm_positions"].shape[1])
    return prediction_logits.detach().numpy()[rows, b["masked_lm_positions"].reshape(-1)]


# Finetuning and pretraining runs on the shipped data, as the fixtures in conftest.py and several test files make them.

def convert(*flags):
    from tools import convert_task_data
    convert_task_data.main(list(flags))


def model_yaml(tmp_path, vocab_size, seq_length, **overrides):
    from src.config import load_bert_config, save_bert_config
    return save_bert_config(load_bert_config("tiny", vocab_size=vocab_size, seq_length=seq_length, **overrides),
                            tmp_path / "model.yaml")


def classify(tmp_path, num_class, method, epochs="4", seq_length=64):
    import run_classifier
    return run_classifier.main([
        "--do_train", "true", "--do_eval", "true", "--epoch_num", epochs, "--num_class", str(num_class),
        "--assessment_method", method, "--device_target", "CPU",
        "--train_data_file_path", str(tmp_path / "train.tfrecord"),
        "--eval_data_file_path", str(tmp_path / "dev.tfrecord"),
        "--schema_file_path", str(tmp_path / "train.tfrecord.schema.json"), "--config", TINY,
        "--bert_network", str(model_yaml(tmp_path, 4000, seq_length)),
        "--save_finetune_checkpoint_path", str(tmp_path / "ckpt"),
        "--output_dir", str(tmp_path)])


def first_reviews_as_records(sentiment, tmp_path, count: int) -> Path:
    """The first count training reviews as classification records of 32 tokens in tmp_path/train.tfrecord (labels
    in tmp_path/labels.json)."""
    directory, vocab = sentiment
    lines = (directory / "train.txt").read_text(encoding="utf-8").splitlines()[:count]
    (tmp_path / "train.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    convert("--task", "classification", "--input_format", "label_text", "--input_file", str(tmp_path / "train.txt"),
            "--output_file", str(tmp_path / "train.tfrecord"), "--vocab_file", str(vocab),
            "--label2id_file", str(tmp_path / "labels.json"), "--create_label2id", "true", "--max_seq_length", "32")
    return tmp_path / "train.tfrecord"


NER_SEQ = 64


def ner(directory, model, *flags):
    import run_ner
    return run_ner.main(["--device_target", "CPU", "--label2id_file_path", str(directory / "labels.json"),
                         "--train_data_file_path", str(directory / "train.tfrecord"),
                         "--eval_data_file_path", str(directory / "dev.tfrecord"), "--config", TINY,
                         "--bert_network", str(model), *flags])


def build_squad_file(wiki_text_dir, path, questions, max_words, seed=0):
    """Questions on real paragraphs: the answer is a run of 1-3 words of the paragraph (punctuation and case
    as written); the question quotes the words around it."""
    import re

    from src.data.corpus import read_documents
    rng = random.Random(seed)
    paragraphs = []
    for text_file in sorted(wiki_text_dir.glob("*.txt")):
        for document in read_documents(text_file):
            context = " ".join(" ".join(document).split()[:max_words])
            if len(context.split()) >= 40:
                paragraphs.append(context)
    data, count = [], 0
    for index, context in enumerate(paragraphs[:questions]):
        words = list(re.finditer(r"\S+", context))
        first = rng.randrange(3, len(words) - 6)
        last = first + rng.randrange(0, 3)
        answer = context[words[first].start():words[last].end()]
        before = " ".join(w.group() for w in words[first - 3:first])
        after = " ".join(w.group() for w in words[last + 1:last + 4])
        question = f"What comes between '{before}' and '{after}'?"
        data.append({"title": f"p{index}", "paragraphs": [{"context": context, "qas": [
            {"id": f"q{index}", "question": question, "answers": [{"text": answer,
                                                                    "answer_start": words[first].start()}]}]}]})
        count += 1
    path.write_text(json.dumps({"version": "1.1", "data": data}), encoding="utf-8")
    return count


def write_run_config(directory: Path, vocab_size: int = 4000, seq_length: int = 64, **run_settings) -> Path:
    """A tiny model YAML without dropout (fp32) and a run config pointing at it; returns the run config path."""
    import yaml

    from src.config import load_bert_config, save_bert_config
    model = save_bert_config(load_bert_config("tiny", vocab_size=vocab_size, seq_length=seq_length,
                                              hidden_dropout_prob=0.0,
                                              attention_probs_dropout_prob=0.0), directory / "model.yaml")
    with open(ROOT / "configs" / "pretrain_tiny.yaml", encoding="utf-8") as handle:
        values = yaml.safe_load(handle)
    values.update(bert_network=str(model), **{"batch_size": 8, **run_settings})
    path = directory / "run.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path

