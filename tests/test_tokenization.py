"""The fast tokenizer (tokenizers package) gives exactly Google's FullTokenizer output on real text.

Reference: Google's own tokenization.py (the bert-tensorflow package), run by tests/google_bert.py.
"""
import json
import random
import sys

import pytest

from src.data.tokenization import BasicTokenizer, FullTokenizer, load_vocab
from tests import google_bert

pytestmark = pytest.mark.reference

# Full-width punctuation, accents, mixed scripts, control characters: where tokenizers tend to differ.
HARD_CASES = [
    "北京大学（Peking University）成立于1898年，是中国第一所国立综合性大学！",
    "“你好”，他说：“今天天气不错。”——真的吗？",
    "Café déjà vu: naïve résumé, Ångström, São Paulo.",
    "ＡＢＣ１２３ full-width latin，and　ideographic space",
    "tab\there, zero\u200bwidth, control\x07char, emoji 🙂 end",
    "supercalifragilisticexpialidocious" * 5,  # 170 characters: WordPiece splits it (Google's limit is 200)
    "honorificabilitudinitatibus" * 8,  # 216 characters: [UNK]
    # outside the Basic Multilingual Plane (handled apart, src/data/tokenization.py): CJK extension B, emoji, format
    # characters, combining marks, a character that decomposes into two, punctuation
    "astral 𠀀𠀁 ext-B, emoji🙂x, 𝄞music, tag\U000E0001x, \U0001D173beam x\U0001D167y \U0001109A "
    "word\U0001E95Epunct \U00010100sep",
    "controls in words: a\x1cb c\x85d e\u2028f g\u2029h soft\xadhyphen zero\u200dwidth\ufeffbom nul\x00x",
    "Greek and Turkish: ΟΔΟΣ. ΣΑΣ; İstanbul ῾Ω x\u037ey ano\u0387teleia \u1fefvaria",
    "decomposed: e\u0301cole n\u0303 A\u030a \u0301x and \ufffd replacement",
]


def lines_of(*paths):
    return [line.strip() for path in paths for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def assert_same_tokens(vocab_file, texts, do_lower_case, tmp_path):
    """Every text tokenized by ours and by Google's FullTokenizer, compared one by one."""
    text_file, google_file = tmp_path / "texts.txt", tmp_path / "google.json"
    text_file.write_text("".join(f"{text}\n" for text in texts), encoding="utf-8")
    google_bert.run("tokenize", vocab_file, text_file, google_file, str(do_lower_case).lower())
    google = json.loads(google_file.read_text(encoding="utf-8"))
    assert len(google) == len(texts)
    tokenizer = FullTokenizer(vocab_file, do_lower_case)
    ours = tokenizer.tokenize_batch(texts)
    for text, mine, reference in zip(texts, ours, google):
        assert mine == reference, text
    assert tokenizer.ids_batch(texts) == [tokenizer.convert_tokens_to_ids(tokens) for tokens in google]
    assert [tokenizer.tokenize(text) for text in texts[-len(HARD_CASES):]] == google[-len(HARD_CASES):]  # alone


@pytest.mark.slow
@pytest.mark.parametrize("do_lower_case", [True, False])
def test_english_wikipedia_matches_google(wiki_text_dir, wiki_vocab, do_lower_case, tmp_path):
    texts = lines_of(*sorted(wiki_text_dir.glob("*.txt"))) + HARD_CASES  # every sentence of the sample
    assert len(texts) > 5000
    assert_same_tokens(wiki_vocab, texts, do_lower_case, tmp_path)


def test_chinese_news_matches_google(chinese_text_file, chinese_vocab, tmp_path):
    texts = lines_of(chinese_text_file) + HARD_CASES
    assert_same_tokens(chinese_vocab, texts, True, tmp_path)


@pytest.mark.slow
def test_basic_tokenizer_equals_googles_on_every_code_point(tmp_path):
    """Every Unicode scalar value once, 40 a line in a random order, with spaces, letters, a dot, a capital sigma and
    a combining accent between them: our BasicTokenizer (regular expressions over BMP classes, callbacks for
    astral characters) against Google's, lower-cased and cased."""
    rng = random.Random(0)
    points = [point for point in range(1, sys.maxunicode + 1) if not 0xD800 <= point <= 0xDFFF]
    rng.shuffle(points)
    lines = []
    for start in range(0, len(points), 40):
        characters = [chr(point) for point in points[start:start + 40]]
        for at in range(0, 40, 7):
            characters.insert(at, rng.choice([" ", "a", "E", ".", "\u03a3", "\u0301"]))
        lines.append("".join(characters).replace("\n", " ").replace("\r", " "))  # one text a line of the file
    text_file, google_file = tmp_path / "texts.txt", tmp_path / "google.json"
    text_file.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    google_bert.run("basic_tokenize", text_file, google_file)
    google = json.loads(google_file.read_text(encoding="utf-8"))
    for lower in (True, False):
        ours = BasicTokenizer(lower).words_batch(lines)
        assert len(ours) == len(google[str(lower).lower()]) == len(lines)
        for line, mine, reference in zip(lines, ours, google[str(lower).lower()]):
            assert mine == reference, ascii(line)


def test_chinese_characters_are_single_tokens_and_unknown_words_become_unk(chinese_vocab):
    tokenizer = FullTokenizer(chinese_vocab)
    assert tokenizer.tokenize("中国人民") == ["中", "国", "人", "民"]
    assert tokenizer.tokenize("\u2603\u2603\u2603") == ["[UNK]"]  # a word of characters the vocab lacks


def test_a_line_break_inside_a_text_is_a_space(wiki_vocab):
    """Google's _clean_text makes "\\n" a space; a batch's texts are joined with it internally."""
    tokenizer = FullTokenizer(wiki_vocab)
    assert tokenizer.tokenize_batch(["the city\nbegan", "in the"]) == [tokenizer.tokenize("the city began"),
                                                                       tokenizer.tokenize("in the")]
    assert tokenizer.tokenize_batch([]) == [] and tokenizer.tokenize("") == []


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
