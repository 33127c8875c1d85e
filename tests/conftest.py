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
