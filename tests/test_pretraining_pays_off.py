"""The demonstration chain of scripts/pretrain_finetune_demo.sh, shortened, as a user runs it: shipped People's
Daily and reviews -> held-out test sets -> vocab -> records -> pretraining -> NER finetuning from the pretrained
checkpoint and from random weights -> table and plot. The pretrained start must beat random weights on the
held-out sentences by MARGIN entity-F1 points.
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import matplotlib.image
import mindspore as ms
import numpy as np
import pytest

from src.config import load_bert_config
from src.data.corpus import read_documents, split_sentences
from src.model.task_heads import BertForSequenceClassification
from src.tasks.task_files import peoples_daily_bio
from tools import compare_starts, split_labeled_text

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "scripts" / "pretrain_finetune_demo.sh"
PRETRAIN_STEPS = "300"
TRAIN_SIZE = "500"
# Measured with these settings on seeds 0, 1, 2 (the labeled draw and the finetuning seed; pretraining fixed), with
# dropout on in pretraining: +8.0, +9.0 and +7.4 F1 points (pretrained 0.186 / 0.180 / 0.170 against random 0.106 /
# 0.090 / 0.096); with dropout off (configs/pretrain_demo.yaml now), seed 0: +9.3 (0.198 against 0.105). The test
# runs seed 0 and asks for 5 points, below the smallest gain seen.
MARGIN = 0.05


def squeeze(text: str) -> str:
    return "".join(text.split())


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    result = subprocess.run(["bash", str(DEMO), str(out), PRETRAIN_STEPS, "0", TRAIN_SIZE, "ner"],
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (out / "stdout.txt").write_text(result.stdout, encoding="utf-8")
    return out


def test_demo_writes_table_and_plot(demo):
    result = json.loads((demo / "ner" / "compare.json").read_text())
    assert (result["task"], result["metric"], result["test_examples"]) == ("ner", "f1", 1000)
    assert {(run["start"], run["train_size"], run["seed"]) for run in result["runs"]} == \
        {("pretrained", int(TRAIN_SIZE), 0), ("random", int(TRAIN_SIZE), 0)}
    [row] = result["summary"]
    for start in ("pretrained", "random"):
        assert 0 < row[start]["mean"] < 1, row
        assert row[start]["values"] == [row[start]["mean"]]
    table = (demo / "ner" / "compare.txt").read_text().splitlines()
    assert table[0] == "held-out f1" and table[2].split()[0] == TRAIN_SIZE
    image = matplotlib.image.imread(demo / "ner" / "compare.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    manifest = json.loads((demo / "ner" / "manifest.json").read_text())
    assert {"compare.json", "compare.png", "compare.txt"} <= set(manifest["files"])
    for start in ("pretrained", "random"):  # the scores come from the runs' own eval results
        run = json.loads((demo / "ner" / "runs" / f"{start}_{TRAIN_SIZE}_seed0" / "eval_result.json").read_text())
        assert run["f1"] == row[start]["mean"]


def test_demo_ends_with_the_finetuned_tagger_on_raw_text(demo):
    """The last step runs predict.py on two sentences with the pretrained start's model: JSON lines whose
    entities are the text at their offsets."""
    lines = (demo / "stdout.txt").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.startswith('{"line": ')]
    assert [row["line"] for row in rows] == [1, 2]
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"]:entity["end"]] == entity["text"]
    assert sum(len(row["entities"]) for row in rows) >= 1


def test_pretrained_start_beats_random_weights(demo):
    [row] = json.loads((demo / "ner" / "compare.json").read_text())["summary"]
    assert row["gain"] >= MARGIN, row


def test_test_sets_are_held_out_of_training_and_pretraining(demo):
    ner = demo / "ner_splits"
    sentences = set((ner / "pretrain_text.txt").read_text(encoding="utf-8").splitlines())
    test_lines = (ner / "test.txt").read_text(encoding="utf-8").splitlines()
    train_lines = (ner / f"train_{TRAIN_SIZE}_seed0.txt").read_text(encoding="utf-8").splitlines()
    assert len(set(test_lines)) == 1000 and not set(test_lines) & set(train_lines)
    paragraphs = ["".join(peoples_daily_bio(line)[0]) for line in test_lines]
    leaked = [text for text in paragraphs  # every sentence of a test paragraph found in the pretraining text
              if len(text) >= 20 and all(sentence in sentences for sentence in split_sentences(text, "zh"))]
    assert not leaked, leaked[:3]
    splits = demo / "sentiment_splits"
    test = {line.split("\t", 1)[1] for line in (splits / "test.tsv").read_text(encoding="utf-8").splitlines()}
    train = {line.split("\t", 1)[1] for line in
             (splits / f"train_{TRAIN_SIZE}_seed0.tsv").read_text(encoding="utf-8").splitlines()}
    pretraining = {squeeze("".join(document)) for document in read_documents(splits / "pretrain_text.txt")}
    assert len(test) == 2000 and not test & train
    assert len(pretraining) > 15000 and not {squeeze(text) for text in test} & pretraining
    labels = [line.split("\t", 1)[0] for line in (splits / "test.tsv").read_text(encoding="utf-8").splitlines()]
    assert labels.count("pos") == labels.count("neg") == 1000


def test_mean_pooling_classifier_reads_the_mean_of_the_real_tokens():
    config = load_bert_config("tiny").replace(vocab_size=50, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    model = BertForSequenceClassification(config, 3, pooling="mean")
    model.set_train(False)
    ids = np.random.default_rng(0).integers(5, 50, (2, 8)).astype(np.int32)
    mask = np.array([[1] * 8, [1] * 5 + [0] * 3], np.int32)
    segments = np.zeros_like(ids)
    logits = model(ms.Tensor(ids), ms.Tensor(mask), ms.Tensor(segments)).asnumpy()
    sequence = model.bert(ms.Tensor(ids), ms.Tensor(segments), ms.Tensor(mask))[0].asnumpy()
    pooled = np.stack([sequence[0].mean(0), sequence[1, :5].mean(0)])
    expected = pooled @ model.classifier.weight.asnumpy().T + model.classifier.bias.asnumpy()
    np.testing.assert_allclose(logits, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("argv, message", [
    (["300", "0", "500", "nerr"], "unknown task 'nerr' (5th argument)"),
    (["0", "0", "500", "ner"], "pretraining steps '0' (argument 2) is not a positive integer"),
    (["300", "0", "500", "sentiment", "7k"], "pretraining steps '7k' (argument 6) is not a positive integer"),
])
def test_demo_refuses_bad_arguments_before_any_work(tmp_path, argv, message):
    out = tmp_path / "demo"
    result = subprocess.run(["bash", str(DEMO), str(out), *argv], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and result.stdout == "", result.stdout
    assert result.stderr.startswith("pretrain_finetune_demo.sh: ") and message in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not out.exists()


def test_split_refuses_a_text_without_label(tmp_path):
    bad = tmp_path / "reviews.tsv"
    bad.write_text("pos\tgood\nno tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"reviews.tsv:2: expected label<TAB>text"):
        split_labeled_text.read_labeled_text(bad)


@pytest.mark.parametrize("argv, message", [
    (["--input_file", "missing.tsv", "--output_dir", "{tmp}/out"], "input file missing.tsv does not exist"),
    (["--input_file", "{tmp}/pd.txt", "--input_format", "peoples_daily", "--output_dir", "{tmp}/out",
      "--test_size", "2", "--train_sizes", "2"], "fewer than --test_size plus the largest of --train_sizes"),
    (["--input_file", "{tmp}/reviews.tsv", "--output_dir", "{tmp}/out", "--test_size", "4"],
     "has 1 texts labeled 'neg' left, 2 are needed"),
    (["--input_file", "{tmp}/reviews.tsv", "--output_dir", "{tmp}/out", "--seeds", "a"],
     "--train_sizes and --seeds take comma-separated integers"),
])
def test_split_bad_input_ends_in_one_line(tmp_path, argv, message):
    (tmp_path / "pd.txt").write_text("中国/ns  人民/n\n北京/ns  大学/n\n", encoding="utf-8")
    (tmp_path / "reviews.tsv").write_text("pos\t好\npos\t很好\npos\t不错\nneg\t差\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        split_labeled_text.main([arg.replace("{tmp}", str(tmp_path)) for arg in argv])
    error = str(exit_info.value.code)  # run_cli exits with the one line as the message
    assert error.startswith("split_labeled_text.py: ") and message in error and "\n" not in error, error
    assert not (tmp_path / "out").exists()


def test_compare_refuses_a_directory_the_split_tool_did_not_make(tmp_path):
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "test.tsv").write_text("pos\t好\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        compare_starts.main(["--splits_dir", str(tmp_path / "splits"), "--vocab_file", "v.txt", "--bert_network",
                             "tiny", "--pretrained_checkpoint", "p", "--output_dir", str(tmp_path / "out")])
    error = str(exit_info.value.code)
    assert "is not an output of tools/split_labeled_text.py" in error and "\n" not in error, error
