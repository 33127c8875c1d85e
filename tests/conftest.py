"""Test set-up: MindSpore in graph mode on CPU (what CI has), and the fixtures that turn the real corpora the
repository ships into text, vocabularies, records and finetuned models once per session (helpers: tests/helpers.py)."""
import json
import os
import random
from pathlib import Path

# transformers imports TensorFlow whenever it is installed (requirements-dev.txt has it for Google's reference
# code), and TensorFlow's tf.train.Example protos clash with the tfrecord package's in one process ("Conflict
# register for file tensorflow/core/example/feature.proto"). The tests use transformers' PyTorch models only;
# TensorFlow runs in processes of its own (tests/google_bert.py, the converter in test_google_checkpoint.py).
os.environ["USE_TF"] = "0"

import mindspore as ms
import pytest

from tests.helpers import DATA, NER_SEQ, ROOT, build_squad_file, classify, convert, model_yaml, ner

ms.set_context(mode=ms.GRAPH_MODE)
ms.set_device("CPU")


@pytest.fixture(scope="session")
def wiki_text_dir(tmp_path_factory) -> Path:
    """The shipped English Wikipedia sample dump through wikiextractor: one sentence a line, documents apart."""
    from tools import wiki_to_text
    output = tmp_path_factory.mktemp("wiki_text")
    wiki_to_text.main(["--input", str(DATA / "enwiki-sample-pages-articles.xml.bz2"), "--output_dir", str(output)])
    return output


@pytest.fixture(scope="session")
def wiki_vocab(wiki_text_dir, tmp_path_factory) -> Path:
    from src.data.tokenization import train_vocab
    return train_vocab(sorted(wiki_text_dir.glob("*.txt")), tmp_path_factory.mktemp("wiki_vocab"), vocab_size=4000)


@pytest.fixture(scope="session")
def chinese_text_file(tmp_path_factory) -> Path:
    """The shipped People's Daily subset as plain Chinese documents."""
    from src.data.corpus import peoples_daily_documents, write_documents
    path = tmp_path_factory.mktemp("zh_text") / "peoples_daily.txt"
    with open(DATA / "peoples_daily_199801_head2500.txt", encoding="utf-8") as lines:
        write_documents(peoples_daily_documents(lines), path)
    return path


@pytest.fixture(scope="session")
def chinese_vocab(chinese_text_file, tmp_path_factory) -> Path:
    from src.data.tokenization import train_vocab
    return train_vocab([chinese_text_file], tmp_path_factory.mktemp("zh_vocab"), vocab_size=3000)


@pytest.fixture
def rng() -> random.Random:
    return random.Random(12345)


@pytest.fixture(scope="session")
def wiki_records(wiki_text_dir, wiki_vocab, tmp_path_factory) -> Path:
    """Pretraining TFRecords (seq 64, 10 predictions) from the last of the English sample's three text files (17
    articles, about 3,000 records, a quarter of the sample), three shards of 6, 6 and 5 articles. Every
    run_pretrain.py run reads all of its records before training (the record scan), so its size is paid by each
    of the many runs on it; the runs need a few hundred records at most."""
    from tools import create_pretraining_data
    output = tmp_path_factory.mktemp("wiki_records")
    create_pretraining_data.main(["--input_file", str(wiki_text_dir / "wiki_0002.txt"), "--output_dir", str(output),
                                  "--vocab_file", str(wiki_vocab), "--max_seq_length", "64",
                                  "--max_predictions_per_seq", "10", "--dupe_factor", "1", "--processes", "1",
                                  "--docs_per_shard", "6"])
    return output


@pytest.fixture(scope="session")
def sentiment(tmp_path_factory):
    """The shipped Chinese reviews: 2,000 for training, 400 held out; a WordPiece vocab of the training text."""
    directory = tmp_path_factory.mktemp("sentiment")
    lines = (DATA / "sentiment_zh_2400.txt").read_text(encoding="utf-8").splitlines()
    (directory / "train.txt").write_text("\n".join(lines[:2000]) + "\n", encoding="utf-8")
    (directory / "dev.txt").write_text("\n".join(lines[2000:]) + "\n", encoding="utf-8")
    (directory / "text.txt").write_text("\n".join(line.split("\t")[1] for line in lines[:2000]), encoding="utf-8")
    from src.data.tokenization import train_vocab
    return directory, train_vocab([directory / "text.txt"], directory, vocab_size=4000)


@pytest.fixture(scope="session")
def sentiment_classifier(tmp_path_factory, sentiment):
    """The reviews as records, and a tiny classifier finetuned on them (2 epochs) and evaluated on the 400."""
    tmp_path = tmp_path_factory.mktemp("classifier")
    directory, vocab = sentiment
    for split in ("train", "dev"):
        convert("--task", "classification", "--input_format", "label_text",
                "--input_file", str(directory / f"{split}.txt"),
                "--output_file", str(tmp_path / f"{split}.tfrecord"), "--vocab_file", str(vocab),
                "--label2id_file", str(tmp_path / "labels.json"), "--create_label2id", "true",
                "--max_seq_length", "64")
    return tmp_path, classify(tmp_path, 2, "accuracy", epochs="2")


@pytest.fixture(scope="session")
def peoples_daily_ner(tmp_path_factory, chinese_vocab):
    """People's Daily lines 1-2000 for training, 2001-2500 held out, as NER records of 64 tokens (a line is cut
    after 62 characters; half the cost of 128); and the held-out part in CLUENER json, to check the submission
    output."""
    from src.tasks.metrics import entity_spans
    from src.tasks.task_files import peoples_daily_bio
    directory = tmp_path_factory.mktemp("ner")
    lines = (DATA / "peoples_daily_199801_head2500.txt").read_text(encoding="utf-8").splitlines()
    (directory / "train.txt").write_text("\n".join(lines[:2000]) + "\n", encoding="utf-8")
    (directory / "dev.txt").write_text("\n".join(lines[2000:]) + "\n", encoding="utf-8")
    with open(directory / "dev.json", "w", encoding="utf-8") as handle:
        for line in lines[2000:]:
            characters, tags = peoples_daily_bio(line)
            if not characters:
                continue
            text, label = "".join(characters), {}
            for entity_type, start, end in sorted(entity_spans(tags), key=lambda s: s[1]):
                label.setdefault(entity_type, {}).setdefault(text[start:end + 1], []).append([start, end])
            handle.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")
    for split, source, file_format in (("train", "train.txt", "peoples_daily"), ("dev", "dev.txt", "peoples_daily"),
                                       ("dev_json", "dev.json", "cluener_json")):
        convert("--task", "ner", "--input_format", file_format, "--input_file", str(directory / source),
                "--output_file", str(directory / f"{split}.tfrecord"), "--vocab_file", str(chinese_vocab),
                "--label2id_file", str(directory / "labels.json"), "--create_label2id", "true",
                "--max_seq_length", str(NER_SEQ))
    return directory, model_yaml(directory, sum(1 for _ in open(chinese_vocab, encoding="utf-8")), NER_SEQ)


@pytest.fixture(scope="session")
def crf_tagger(tmp_path_factory, peoples_daily_ner):
    """One 3-epoch CRF run that keeps its checkpoint of every epoch, evaluated on the held-out sentences; and the
    CLUENER submission of its last checkpoint for the same sentences in CLUENER json (run_ner.py's
    clue_benchmark). Returns the checkpoint directory, the scores, and the submission's directory and scores."""
    import src.train.finetune
    directory, model = peoples_daily_ner
    tmp_path = tmp_path_factory.mktemp("crf")
    policy = src.train.finetune.CheckpointPolicy
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.setattr(src.train.finetune, "CheckpointPolicy", lambda *a, **k: policy(*a, **{**k, "keep": 5}))
        scores = ner(directory, model, "--do_train", "true", "--do_eval", "true", "--use_crf", "true",
                     "--epoch_num", "3", "--save_finetune_checkpoint_path", str(tmp_path / "e3"),
                     "--output_dir", str(tmp_path / "e3"))
    clue = ner(directory, model, "--do_train", "false", "--do_eval", "true", "--use_crf", "true",
               "--eval_data_file_path", str(directory / "dev_json.tfrecord"), "--load_finetune_checkpoint_path",
               str(tmp_path / "e3"), "--assessment_method", "clue_benchmark", "--eval_json_path",
               str(directory / "dev.json"), "--output_dir", str(tmp_path / "clue"))
    return tmp_path / "e3", scores, tmp_path / "clue", clue


@pytest.fixture(scope="session")
def squad_model(tmp_path_factory, wiki_text_dir, wiki_vocab):
    """16 questions on Wikipedia paragraphs, a tiny model finetuned on them 40 epochs and evaluated on them."""
    import yaml

    import run_squad
    from src.config import load_bert_config, save_bert_config
    from tools import convert_task_data
    tmp_path = tmp_path_factory.mktemp("squad")
    path = tmp_path / "squad.json"
    build_squad_file(wiki_text_dir, path, questions=16, max_words=60)
    convert_task_data.main(["--task", "squad", "--input_file", str(path), "--output_file",
                            str(tmp_path / "train.tfrecord"), "--vocab_file", str(wiki_vocab),
                            "--max_seq_length", "128", "--doc_stride", "64", "--max_query_length", "32"])
    config = yaml.safe_load((ROOT / "configs" / "finetune_tiny.yaml").read_text())
    config.update(batch_size=4, optimizers={"Lamb": {**config["optimizers"]["Lamb"], "learning_rate": 1e-2}})
    (tmp_path / "run.yaml").write_text(yaml.safe_dump(config))
    model = save_bert_config(load_bert_config("tiny", vocab_size=4000, hidden_dropout_prob=0.0,
                                              attention_probs_dropout_prob=0.0), tmp_path / "model.yaml")
    scores = run_squad.main(["--do_train", "true", "--do_eval", "true", "--epoch_num", "40", "--device_target", "CPU",
                             "--train_data_file_path", str(tmp_path / "train.tfrecord"), "--eval_json_path", str(path),
                             "--vocab_file_path", str(wiki_vocab), "--config", str(tmp_path / "run.yaml"),
                             "--bert_network", str(model), "--max_seq_length", "128", "--doc_stride", "64",
                             "--max_query_length", "32", "--save_finetune_checkpoint_path", str(tmp_path / "ckpt"),
                             "--output_dir", str(tmp_path)])
    return tmp_path, scores


# The slowest files, started first: with pytest-xdist's --dist loadfile a file runs whole on one worker, and the
# demonstration chain (7 minutes), collected late in alphabetical order, ran alone at the end of the suite.
SLOW_FILES_FIRST = ("test_pretraining_pays_off.py", "test_bad_input.py", "test_finetune.py", "test_pretraining_run.py",
                    "test_google_records.py")


def pytest_collection_modifyitems(items: list) -> None:
    def rank(item) -> int:
        name = item.path.name
        return SLOW_FILES_FIRST.index(name) if name in SLOW_FILES_FIRST else len(SLOW_FILES_FIRST)
    items.sort(key=rank)  # stable: the order within each file is kept
