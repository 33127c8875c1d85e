"""Test set-up: the repository root on sys.path, MindSpore in graph mode on CPU (what CI has), and the real
corpora the repository ships turned into text, vocabularies and records once per session."""
import random
import sys
from pathlib import Path

import mindspore as ms
import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
sys.path.insert(0, str(ROOT))

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
    from src.tokenization import train_vocab
    return train_vocab(sorted(wiki_text_dir.glob("*.txt")), tmp_path_factory.mktemp("wiki_vocab"), vocab_size=4000)


@pytest.fixture(scope="session")
def chinese_text_file(tmp_path_factory) -> Path:
    """The shipped People's Daily subset as plain Chinese documents."""
    from src.corpus import peoples_daily_documents, write_documents
    path = tmp_path_factory.mktemp("zh_text") / "peoples_daily.txt"
    with open(DATA / "peoples_daily_199801_head2500.txt", encoding="utf-8") as lines:
        write_documents(peoples_daily_documents(lines), path)
    return path


@pytest.fixture(scope="session")
def chinese_vocab(chinese_text_file, tmp_path_factory) -> Path:
    from src.tokenization import train_vocab
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


def write_run_config(directory: Path, vocab_size: int = 4000, **run_settings) -> Path:
    """A tiny model YAML without dropout (fp32) and a run config pointing at it; returns the run config path."""
    import yaml
    from src.config import load_bert_config, save_bert_config
    model = save_bert_config(load_bert_config("tiny", vocab_size=vocab_size, seq_length=64, hidden_dropout_prob=0.0,
                                              attention_probs_dropout_prob=0.0), directory / "model.yaml")
    with open(ROOT / "configs" / "pretrain_tiny.yaml", encoding="utf-8") as handle:
        values = yaml.safe_load(handle)
    values.update(bert_network=str(model), **{"batch_size": 8, **run_settings})
    path = directory / "run.yaml"
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path
