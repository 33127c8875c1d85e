"""predict.py pads each batch to its longest input (src/serve/pipelines.py sorted_outputs): inputs sorted by length
into batches give the outputs, in input order, of padding every input to max_seq_length, on the mindspore backend
(bucket lengths: src/serve/backends.py bucket_length) and on onnxruntime (any length of a dynamic file, the shape of
a fixed one), for BERT and NEZHA; --batch_size 1 runs one input at a time; export.py --quantize int8 prints the
int8 file's score and float32's on --calibration_file, as an independent scorer computes them on predict.py's
outputs, and writes them on the task card beside the file. Tiny models of random weights on real text."""
import json

import numpy as np
import pytest
from mindspore import Tensor
from sklearn.metrics import accuracy_score

import export
import predict
from src.config import load_bert_config
from src.data.tokenization import FullTokenizer
from src.files.checkpoint import write_checkpoint
from src.serve.backends import MindSporeBackend, OnnxBackend, bucket_length, task_network
from src.serve.onnx_graph import write_task_onnx
from src.serve.pipelines import Counts, classify, sorted_outputs, tag_entities
from src.tasks.task_card import RunCard, TaskCard, read_card
from src.tasks.task_files import TextExample, classification_features
from tests.helpers import DATA, PadsToMax

SEQ = 32
BATCH = 4
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
REVIEWS = [line.split("\t") for line in (DATA / "sentiment_zh_2400.txt").read_text(encoding="utf-8").splitlines()]
SENTENCES = ["".join(word.split("/")[0] for word in line.split()[1:])
             for line in (DATA / "peoples_daily_199801_head2500.txt").read_text(encoding="utf-8").splitlines()[:40]]
CONFIGS = {"bert": load_bert_config("tiny").replace(vocab_size=3000, seq_length=SEQ, max_position_embeddings=64),
           "nezha": load_bert_config("tiny").replace(vocab_size=3000, seq_length=SEQ, max_position_embeddings=64,
                                                     use_relative_positions=True, max_relative_position=8)}
CARDS = {"classification": TaskCard(task="classification", max_seq_length=SEQ, labels=("neg", "pos"), num_class=2,
                                    classifier_pooling="mean"),
         "ner": TaskCard(task="ner", max_seq_length=SEQ, labels=("O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG",
                                                                 "I-ORG"))}
PREFIXES = {"classification": "classifier", "ner": "ner"}


def mixed_reviews(count=23):
    """Reviews cut to lengths from 1 character to past SEQ tokens (truncated), in no order of length."""
    rng = np.random.default_rng(0)
    return [text[:int(rng.integers(1, 45))] for _, text in REVIEWS[:count]]


def mixed_sentences(count=15):
    """People's Daily sentences cut to 1-80 characters: the long ones are read in windows of SEQ - 2."""
    rng = np.random.default_rng(1)
    return [text[:int(rng.integers(1, 80))] for text in SENTENCES[:count] if text]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    characters = sorted({c for _, text in REVIEWS[:300] for c in text} | {c for text in SENTENCES for c in text})
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(SPECIAL + [c for c in characters if not c.isspace()][:2900]) + "\n", encoding="utf-8")
    return path


def random_run(directory, task, config, vocab, seed=0):
    """A run directory as finetuning leaves it (card, vocab, model, checkpoint), every weight random."""
    network = task_network(CARDS[task], config)
    rng = np.random.default_rng(seed)
    for parameter in network.get_parameters():
        value = rng.normal(0.0, 0.1, parameter.shape).astype(np.float32)
        parameter.set_data(Tensor(value + (1.0 if "LayerNorm.weight" in parameter.name else 0.0)))
    network.set_train(False)
    RunCard(directory, PREFIXES[task]).write(CARDS[task], vocab, config)
    checkpoint = directory / f"{PREFIXES[task]}-1_1.ckpt"
    write_checkpoint(network, checkpoint)
    return checkpoint, network


class Recorded:
    """A backend that notes the shape of every batch it runs, choosing lengths as the backend it wraps."""

    def __init__(self, backend):
        self.backend, self.shapes = backend, []
        self.compiles_per_shape = backend.compiles_per_shape

    def sequence_length(self, longest, max_seq_length):
        return self.backend.sequence_length(longest, max_seq_length)

    def __call__(self, *arrays):
        self.shapes.append(arrays[0].shape)
        return self.backend(*arrays)


class PaddedToMax(PadsToMax):
    """The same backend with no say in the length: every batch padded to max_seq_length."""

    def __init__(self, backend):
        self.backend = backend

    def __call__(self, *arrays):
        assert arrays[0].shape[1] == SEQ
        return self.backend(*arrays)


def backends(tmp_path, task, name, vocab):
    """{"mindspore": the checkpoint's graph, "onnx": its dynamic ONNX file}."""
    checkpoint, network = random_run(tmp_path / name, task, CONFIGS[name], vocab)
    weights = {parameter.name: parameter.asnumpy() for parameter in network.get_parameters()}
    onnx_file = write_task_onnx(tmp_path / f"{name}.onnx", CARDS[task], CONFIGS[name], weights)
    return {"mindspore": MindSporeBackend(CARDS[task], CONFIGS[name], checkpoint), "onnx": OnnxBackend(onnx_file)}


@pytest.mark.parametrize("max_seq_length, lengths", [
    (128, list(range(16, 129, 16))), (512, list(range(64, 513, 64))), (100, [16, 32, 48, 64, 80, 96, 100]),
    (32, [16, 32]), (8, [8])])
def test_bucket_lengths_are_at_most_eight_and_fit_the_longest_row(max_seq_length, lengths):
    got = [bucket_length(longest, max_seq_length) for longest in range(1, max_seq_length + 1)]
    assert sorted(set(got)) == lengths
    assert all(longest <= length for longest, length in zip(range(1, max_seq_length + 1), got))


@pytest.mark.parametrize("kind", ["mindspore", "onnx"])
def test_sorted_dynamic_batches_give_the_padded_to_max_logits_in_input_order(tmp_path, vocab, kind):
    backend = backends(tmp_path, "classification", "bert", vocab)[kind]
    tokenizer = FullTokenizer(vocab)
    rows = [classification_features(TextExample(text, None, "", ""), tokenizer, 0, SEQ) for text in mixed_reviews()]
    lengths = [int(row["input_mask"].sum()) for row in rows]
    assert lengths != sorted(lengths) and min(lengths) < 8 and max(lengths) == SEQ
    # padded to max, unsorted, one row at a time: each row's logits in input order
    want = np.concatenate([backend(*(row[name][None] for name in ("input_ids", "input_mask", "segment_ids")))[0]
                           for row in rows])
    recorded = Recorded(backend)
    got = np.stack([logits for logits, in sorted_outputs(rows, recorded, BATCH, SEQ)])
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    batch_lengths = [length for _, length in recorded.shapes]
    assert min(batch_lengths) < SEQ  # the short batches ran short
    if kind == "mindspore":  # bucket lengths, full rows: 2 shapes compiled
        assert set(recorded.shapes) <= {(BATCH, 16), (BATCH, 32)}
    else:  # the batch's longest row, rows as they come (23 = 5 x 4 + 3)
        assert sorted(batch_lengths) == [max(sorted(lengths)[i:i + BATCH]) for i in range(0, len(rows), BATCH)]


@pytest.mark.parametrize("kind", ["mindspore", "onnx"])
def test_classify_gives_the_padded_to_max_labels_and_probabilities(tmp_path, vocab, kind):
    backend = backends(tmp_path, "classification", "bert", vocab)[kind]
    tokenizer, texts = FullTokenizer(vocab), [(text, None) for text in mixed_reviews()]
    got = list(classify(texts, backend, tokenizer, CARDS["classification"], BATCH, Counts()))
    want = list(classify(texts, PaddedToMax(backend), tokenizer, CARDS["classification"], BATCH, Counts()))
    assert [row["label"] for row in got] == [row["label"] for row in want]
    np.testing.assert_allclose([row["probability"] for row in got], [row["probability"] for row in want], atol=1e-5)


@pytest.mark.parametrize("name", ["bert", "nezha"])
@pytest.mark.parametrize("kind", ["mindspore", "onnx"])
def test_tagging_gives_the_padded_to_max_entities_and_offsets(tmp_path, vocab, kind, name):
    backend = backends(tmp_path, "ner", name, vocab)[kind]
    tokenizer, texts = FullTokenizer(vocab), mixed_sentences()
    counts = Counts()
    got = list(tag_entities(texts, backend, tokenizer, CARDS["ner"], BATCH, counts, None))
    want = list(tag_entities(texts, PaddedToMax(backend), tokenizer, CARDS["ner"], BATCH, Counts(), None))
    assert counts.windowed > 0  # long sentences read in windows
    strip = [[{k: v for k, v in e.items() if k != "score"} for e in row["entities"]] for row in got]
    assert strip == [[{k: v for k, v in e.items() if k != "score"} for e in row["entities"]] for row in want]
    assert sum(map(len, strip)) > 10
    for text, row in zip(texts, got):
        assert all(text[e["start"]:e["end"]] == e["text"] for e in row["entities"])
    np.testing.assert_allclose([e["score"] for row in got for e in row["entities"]],
                               [e["score"] for row in want for e in row["entities"]], atol=1e-5)


def test_a_fixed_shape_onnx_file_keeps_its_length(tmp_path, vocab):
    checkpoint, network = random_run(tmp_path, "classification", CONFIGS["bert"], vocab)
    weights = {parameter.name: parameter.asnumpy() for parameter in network.get_parameters()}
    fixed = OnnxBackend(write_task_onnx(tmp_path / "fixed.onnx", CARDS["classification"], CONFIGS["bert"], weights,
                                        3, SEQ))
    recorded = Recorded(fixed)
    tokenizer, texts = FullTokenizer(vocab), [(text, None) for text in mixed_reviews(10)]
    got = list(classify(texts, recorded, tokenizer, CARDS["classification"], BATCH, Counts()))
    assert {length for _, length in recorded.shapes} == {SEQ}
    want = list(classify(texts, MindSporeBackend(CARDS["classification"], CONFIGS["bert"], checkpoint), tokenizer,
                         CARDS["classification"], BATCH, Counts()))
    assert [row["label"] for row in got] == [row["label"] for row in want]


def run_predict(capsys, *flags):
    capsys.readouterr()
    predict.main(list(map(str, flags)))
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


def test_batch_size_1_runs_each_input_alone_and_agrees_with_batches(tmp_path, vocab, capsys, monkeypatch):
    random_run(tmp_path / "run", "classification", CONFIGS["bert"], vocab)
    texts = mixed_reviews(9)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    shapes = []
    call = MindSporeBackend.__call__
    monkeypatch.setattr(MindSporeBackend, "__call__", lambda self, *a: shapes.append(a[0].shape) or call(self, *a))
    single = run_predict(capsys, "--load_finetune_checkpoint_path", tmp_path / "run", "--input_file",
                         tmp_path / "in.txt", "--batch_size", 1)
    assert [row["line"] for row in single] == list(range(1, 10)) and [row["text"] for row in single] == texts
    assert len(shapes) == 9 and {rows for rows, _ in shapes} == {1} and {n for _, n in shapes} <= {16, 32}
    batched = run_predict(capsys, "--load_finetune_checkpoint_path", tmp_path / "run", "--input_file",
                          tmp_path / "in.txt", "--batch_size", 4)
    assert [row["label"] for row in single] == [row["label"] for row in batched]
    np.testing.assert_allclose([r["probability"] for r in single], [r["probability"] for r in batched], atol=1e-5)


def test_int8_export_prints_and_records_both_scores_as_an_independent_scorer_finds_them(tmp_path, vocab, capsys):
    """Gold labels: the float32 model's own for two reviews in three, the other label for the third, so float32
    scores 2/3 and int8 what its own labels give; sklearn scores predict.py's outputs of each."""
    random_run(tmp_path / "run", "classification", CONFIGS["bert"], vocab, seed=3)
    texts = [text for _, text in REVIEWS[:60]]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    float_labels = [row["label"] for row in run_predict(capsys, "--load_finetune_checkpoint_path", tmp_path / "run",
                                                        "--input_file", tmp_path / "in.txt")]
    gold = [label if index % 3 else {"neg": "pos", "pos": "neg"}[label] for index, label in enumerate(float_labels)]
    (tmp_path / "dev.txt").write_text("".join(f"{g}\t{t}\n" for g, t in zip(gold, texts)), encoding="utf-8")
    capsys.readouterr()
    result = export.main(["--ckpt_file", str(tmp_path / "run"), "--file_name", str(tmp_path / "int8"),
                          "--file_format", "ONNX", "--batch_size", "0", "--quantize", "int8",
                          "--calibration_file", str(tmp_path / "dev.txt")])
    out = capsys.readouterr().out
    int8_labels = [row["label"] for row in run_predict(capsys, "--load_finetune_checkpoint_path", tmp_path / "run",
                                                       "--input_file", tmp_path / "in.txt", "--backend", "onnx",
                                                       "--model_file", tmp_path / "int8.onnx")]
    float_score, int8_score = accuracy_score(gold, float_labels), accuracy_score(gold, int8_labels)
    assert float_score == pytest.approx(40 / 60)
    assert (f"int8: accuracy {int8_score:.4f}, float32 {float_score:.4f} (int8 - float32 = "
            f"{int8_score - float_score:+.4f}) on the 60 records") in out
    card = json.loads((tmp_path / "int8.onnx.task.json").read_text(encoding="utf-8"))
    assert card["task"] == "classification" and card["labels"] == ["neg", "pos"]
    assert card["int8"]["metric"] == "accuracy" and card["int8"]["records"] == 60
    assert card["int8"]["float32"] == pytest.approx(float_score) and card["int8"]["int8"] == pytest.approx(int8_score)
    assert result["int8"]["int8"] == pytest.approx(int8_score)
    assert read_card(tmp_path / "int8.onnx.task.json").labels == ("neg", "pos")  # still a task card


def test_int8_export_of_a_tagger_scores_entity_f1(tmp_path, vocab, capsys):
    """Gold entities: the float32 tagger's own on every other sentence, none on the rest: F1 as counted by hand."""
    random_run(tmp_path / "run", "ner", CONFIGS["bert"], vocab, seed=4)
    texts = mixed_sentences(12)
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    rows = run_predict(capsys, "--load_finetune_checkpoint_path", tmp_path / "run", "--input_file", tmp_path / "in.txt")
    with open(tmp_path / "dev.json", "w", encoding="utf-8") as handle:
        for index, (text, row) in enumerate(zip(texts, rows)):
            label = {}
            for e in row["entities"] if index % 2 == 0 else []:
                label.setdefault(e["type"], {}).setdefault(e["text"], []).append([e["start"], e["end"] - 1])
            handle.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    found = sum(len(row["entities"]) for row in rows)
    kept = sum(len(row["entities"]) for index, row in enumerate(rows) if index % 2 == 0)
    capsys.readouterr()
    export.main(["--ckpt_file", str(tmp_path / "run"), "--file_name", str(tmp_path / "int8"), "--file_format", "ONNX",
                 "--batch_size", "0", "--quantize", "int8", "--calibration_file", str(tmp_path / "dev.json")])
    out = capsys.readouterr().out
    assert found > kept > 0
    assert f"float32 {2 * kept / (found + kept):.4f}" in out and "int8: entity F1 " in out
    card = json.loads((tmp_path / "int8.onnx.task.json").read_text(encoding="utf-8"))
    assert card["int8"]["metric"] == "entity F1" and card["int8"]["records"] == len(texts)


@pytest.mark.parametrize("flags, fragment", [
    ([], "pass --calibration_file, a labelled classification file"),
    (["--calibration_file", "missing.txt"], "--calibration_file missing.txt does not exist"),
])
def test_int8_export_without_labelled_records_refuses_in_one_line(tmp_path, vocab, monkeypatch, flags, fragment):
    random_run(tmp_path / "run", "classification", CONFIGS["bert"], vocab)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as error:
        export.main(["--ckpt_file", "run", "--file_name", "int8", "--file_format", "ONNX", "--batch_size", "0",
                     "--quantize", "int8", *flags])
    message = str(error.value.code)
    assert "\n" not in message and fragment in message, message
    assert sorted(path.name for path in tmp_path.iterdir()) == ["run"]
