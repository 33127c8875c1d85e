"""The fast tokenizer (tokenizers package) gives exactly Google's FullTokenizer output on real text.

Reference: transformers' slow BertTokenizer, a line-by-line port of google-research/bert tokenization.py.
"""
import itertools

import pytest
from transformers import BertTokenizer

from src.tokenization import FullTokenizer, load_vocab

# Full-width punctuation, accents, mixed scripts, control characters: where tokenizers tend to differ.
HARD_CASES = [
    "北京大学（Peking University）成立于1898年，是中国第一所国立综合性大学！",
    "“你好”，他说：“今天天气不错。”——真的吗？",
    "Café déjà vu: naïve résumé, Ångström, São Paulo.",
    "ＡＢＣ１２３ full-width latin，and　ideographic space",
    "tab\there, zero\u200bwidth, control\x07char, emoji 🙂 end",
    "supercalifragilisticexpialidocious" * 5,
]


def lines_of(path, limit):
    with open(path, encoding="utf-8") as handle:
        return [line.strip() for line in itertools.islice(handle, limit) if line.strip()]


def assert_same_tokens(vocab_file, texts, do_lower_case):
    ours = FullTokenizer(vocab_file, do_lower_case)
    reference = BertTokenizer(str(vocab_file), do_lower_case=do_lower_case)
    for text in texts:
        assert ours.tokenize(text) == reference.tokenize(text), text


@pytest.mark.parametrize("do_lower_case", [True, False])
def test_english_wikipedia_matches_reference(wiki_text_dir, wiki_vocab, do_lower_case):
    texts = lines_of(sorted(wiki_text_dir.glob("*.txt"))[0], 1500) + HARD_CASES
    assert_same_tokens(wiki_vocab, texts, do_lower_case)


def test_chinese_news_matches_reference(chinese_text_file, chinese_vocab):
    texts = lines_of(chinese_text_file, 1500) + HARD_CASES
    assert_same_tokens(chinese_vocab, texts, do_lower_case=True)


def test_chinese_characters_are_single_tokens_and_unknown_words_become_unk(chinese_vocab):
    tokenizer = FullTokenizer(chinese_vocab)
    assert tokenizer.tokenize("中国人民") == ["中", "国", "人", "民"]
    assert tokenizer.tokenize("\u2603\u2603\u2603") == ["[UNK]"]  # a word of characters the vocab lacks


def test_ids_round_trip(wiki_vocab):
    tokenizer = FullTokenizer(wiki_vocab)
    tokens = tokenizer.tokenize("The history of the city began in the ninth century.")
    assert tokenizer.convert_ids_to_tokens(tokenizer.convert_tokens_to_ids(tokens)) == tokens


def test_vocab_without_special_tokens_is_rejected(tmp_path):
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\nthe\n")
    with pytest.raises(ValueError, match=r"vocab file .*vocab.txt lacks \[CLS\], \[SEP\], \[MASK\]"):
        load_vocab(vocab)


def test_missing_vocab_names_the_file_and_the_fix(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nope.txt does not exist.*tools/create_vocab.py"):
        load_vocab(tmp_path / "nope.txt")
