"""BERT tokenization with Google's FullTokenizer semantics.

Google's tokenizer (and HuggingFace's slow BertTokenizer): clean control characters, put spaces around CJK
characters, optionally lower-case and strip accents, split on whitespace and punctuation (BasicTokenizer), then
greedy longest-match WordPiece with "##" continuations and [UNK] for words that cannot be split (or are longer than
200 characters: Google's limit; HuggingFace's port and `tokenizers` default to 100).

Here BasicTokenizer is Google's steps as Python's C-speed string operations (regular expressions over character
classes read from unicodedata, as Google's code reads them; lower() and NFD) over a whole document at a time, and
WordPiece is `tokenizers`' Rust model, called once per distinct word and cached: faster than `tokenizers`' whole
BertWordPiece pipeline, whose per-character normalizer and pre-tokenizer were the cost, which is itself faster than
mindspore.dataset.text.BertTokenizer (whose lower-casing also maps full-width punctuation to ASCII); the figures
are in docs/cpu_workarounds.md.
tests/test_tokenization.py checks equality with Google's tokenization.py on every sentence of the shipped Chinese
and English text.
"""
from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from pathlib import Path
from typing import Iterable, Iterator

from tokenizers import BertWordPieceTokenizer
from tokenizers.models import WordPiece

from src.files.text_input import text_lines

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
GOOGLE_MAX_WORD_CHARACTERS = 200  # a longer word is [UNK] (tokenization.WordpieceTokenizer)
# tokenization._is_chinese_char: the CJK Unified Ideographs blocks, each character a word of its own
_CJK_RANGES = ((0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F), (0x2B740, 0x2B81F),
               (0x2B820, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F))
_WORD_CACHE_LIMIT = 250_000  # distinct words cached with their ids: bounds each worker (docs/cpu_workarounds.md)


def load_vocab(vocab_file: str | Path) -> dict[str, int]:
    """vocab.txt (one token a line, id = line number) -> {token: id}, checking the special tokens are there."""
    path = Path(vocab_file)
    tokens = [line for _, line in text_lines(path, "vocab file", "pass a BERT vocab.txt or make one with "
                                                                 "tools/create_vocab.py")]
    while tokens and not tokens[-1]:
        tokens.pop()
    vocab = {token: index for index, token in enumerate(tokens)}
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise ValueError(f"vocab file {path} lacks {', '.join(missing)}: it is not a BERT vocab.txt")
    return vocab


def _class_body(code_points: Iterable[int]) -> str:
    """The inside of a regular-expression character class holding the given code points, as ranges."""
    ranges: list[list[int]] = []
    for point in sorted(code_points):
        if ranges and ranges[-1][1] == point - 1:
            ranges[-1][1] = point
        else:
            ranges.append([point, point])
    return "".join(re.escape(chr(low)) + (f"-{re.escape(chr(high))}" if high > low else "") for low, high in ranges)


def is_dropped(character: str) -> bool:
    """Whether the tokenizer drops the character (tokenization._clean_text): NUL, U+FFFD and the control and
    format characters (Cc, Cf: the BOM U+FEFF, zero-width spaces, soft hyphens) but tab, "\\n" and "\\r", which
    are white space."""
    return unicodedata.category(character) in ("Cc", "Cf") and character not in "\t\n\r" \
        or character in "\x00\ufffd"


def _is_punctuation(character: str) -> bool:
    """tokenization._is_punctuation: Unicode P*, and every non-alphanumeric printable ASCII character."""
    point = ord(character)
    return unicodedata.category(character).startswith("P") or 33 <= point <= 47 or 58 <= point <= 64 \
        or 91 <= point <= 96 or 123 <= point <= 126


@functools.cache
def _basic_patterns() -> dict[str, re.Pattern]:
    """Google's character predicates (tokenization._is_control, _is_whitespace, _is_chinese_char,
    _is_punctuation, and the Mn accents) as compiled character classes of the Basic Multilingual Plane.
    Python's re matches a class of BMP characters by table lookup, but one holding astral characters by trying
    each range in turn (far slower for the Mn class: docs/cpu_workarounds.md), so the rare astral characters go to
    a callback."""
    control, whitespace, punctuation, marks = [], [], [], []
    for point in range(0x10000):
        character = chr(point)
        if is_dropped(character):
            control.append(point)
        elif unicodedata.category(character) == "Zs" and point != 0x20 or character in "\t\r":
            whitespace.append(point)  # "\n" is handled apart: it separates a batch's texts
        if _is_punctuation(character):
            punctuation.append(point)
        elif unicodedata.category(character) == "Mn":
            marks.append(point)
    cjk = "".join(f"{re.escape(chr(low))}-{re.escape(chr(high))}" for low, high in _CJK_RANGES if high < 0x10000)
    punctuation_body = _class_body(punctuation)
    return {
        "control": re.compile(f"[{_class_body(control)}]+"),
        "whitespace": re.compile(f"[{_class_body(whitespace)}]"),  # Zs has no astral character
        "cjk": re.compile(f"[{cjk}]"),
        "marks": re.compile(f"[{_class_body(marks)}]+"),
        "astral": re.compile("[\U00010000-\U0010FFFF]"),
        # whitespace_tokenize splits with str.split (Python's whitespace, re's \s); then each punctuation
        # character is a word of its own
        "word": re.compile(f"[{punctuation_body}]|[^\\s{punctuation_body}]+"),
    }


def _clean_astral(match: re.Match) -> str:
    """_clean_text and _tokenize_chinese_chars for a character outside the BMP."""
    character = match.group()
    if is_dropped(character):
        return ""
    point = ord(character)
    return f" {character} " if any(low <= point <= high for low, high in _CJK_RANGES) else character


def _strip_astral_mark(match: re.Match) -> str:
    return "" if unicodedata.category(match.group()) == "Mn" else match.group()


def _space_astral_punctuation(match: re.Match) -> str:
    return f" {match.group()} " if _is_punctuation(match.group()) else match.group()


class BasicTokenizer:
    """Google's BasicTokenizer: the words (before WordPiece) of texts, computed for many texts at once."""

    def __init__(self, do_lower_case: bool = True) -> None:
        self.do_lower_case = do_lower_case
        self._patterns = _basic_patterns()

    def words_batch(self, texts: list[str]) -> list[list[str]]:
        if not texts:
            return []
        if any("\n" in text for text in texts):  # "\n" separates the texts below; _clean_text makes it a space
            texts = [text.replace("\n", " ") for text in texts]
        patterns = self._patterns
        text = "\n".join(texts)
        astral = not text.isascii() and len(text.encode("utf-16-le", "surrogatepass")) > 2 * len(text)
        text = patterns["control"].sub("", text)  # _clean_text
        if astral:
            text = patterns["astral"].sub(_clean_astral, text)
        text = patterns["whitespace"].sub(" ", text)
        text = patterns["cjk"].sub(r" \g<0> ", text)  # _tokenize_chinese_chars
        if self.do_lower_case:
            text = text.lower()  # per whitespace-separated word in Google's code: the same result
            if not text.isascii():  # _run_strip_accents
                text = patterns["marks"].sub("", unicodedata.normalize("NFD", text))
                if astral:
                    text = patterns["astral"].sub(_strip_astral_mark, text)
        if astral:  # _run_split_on_punc, with "word" below
            text = patterns["astral"].sub(_space_astral_punctuation, text)
        return [patterns["word"].findall(line) for line in text.split("\n")]


class FullTokenizer:
    """text -> WordPiece tokens -> ids, as google-research/bert tokenization.FullTokenizer."""

    def __init__(self, vocab_file: str | Path, do_lower_case: bool = True) -> None:
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self.basic_tokenizer = BasicTokenizer(do_lower_case)
        self._wordpiece = WordPiece(self.vocab, unk_token="[UNK]", max_input_chars_per_word=GOOGLE_MAX_WORD_CHARACTERS)
        self._word_ids: dict[str, list[int]] = {}

    def tokenize(self, text: str) -> list[str]:
        return self.tokenize_batch([text])[0]

    def basic_tokenize(self, text: str) -> list[str]:
        """The words before WordPiece (SQuAD post-processing aligns predictions with them)."""
        return self.basic_tokenizer.words_batch([text])[0]

    def tokenize_batch(self, texts: Iterable[str]) -> list[list[str]]:
        return [self.convert_ids_to_tokens(ids) for ids in self.ids_batch(texts)]

    def ids_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """The WordPiece ids of each text: Google's words, each distinct word split once and remembered."""
        words = self.basic_tokenizer.words_batch(list(texts))
        cache = self._word_ids
        if len(cache) > _WORD_CACHE_LIMIT:
            cache.clear()
        for word in {word for text in words for word in text}.difference(cache):
            cache[word] = [token.id for token in self._wordpiece.tokenize(word)]
        return [list(itertools.chain.from_iterable(map(cache.__getitem__, text))) for text in words]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        unk = self.vocab["[UNK]"]
        return [self.vocab.get(token, unk) for token in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        inv_vocab = self.inv_vocab
        return [inv_vocab[int(index)] for index in ids]


def train_vocab(files: list[str | Path], output_dir: str | Path, vocab_size: int, min_frequency: int = 2,
                do_lower_case: bool = True) -> Path:
    """Train a WordPiece vocab.txt on plain-text files with `tokenizers` (for users without a BERT vocab).

    Every CJK character seen is kept (limit_alphabet is large): a Chinese model needs single characters.
    The same text gives the same vocab.txt, byte for byte. `tokenizers` numbers the "##" characters in hash-map
    order, which changes every run, and breaks ties between equally frequent merges by those numbers, so both
    the order and the set of merged pieces changed. A first pass (no merges) collects the "##" characters; the
    training pass gets them, sorted, as fixed tokens ahead of everything else. vocab.txt lists the special
    tokens, the characters (by code point), the "##" characters (sorted), then the merged pieces in the order
    they were learned (most frequent first) -- the trainer's own layout.
    """
    paths = [Path(f) for f in files]
    if not paths:
        raise ValueError("no input files for the vocab: pass plain-text files (one sentence a line)")
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"vocab input file {path} does not exist: pass plain-text files "
                                    f"(one sentence a line)")
        if path.stat().st_size == 0:
            raise ValueError(f"vocab input file {path} is empty: pass text, or leave the file out")
    first_pass = _train_wordpiece(paths, 0, min_frequency, do_lower_case, SPECIAL_TOKENS, show_progress=False)
    continuing = sorted(token for token in first_pass if token.startswith("##") and len(token) == 3)
    fixed = (*SPECIAL_TOKENS, *continuing)
    trained = _train_wordpiece(paths, vocab_size, min_frequency, do_lower_case, fixed, show_progress=True)
    rest = trained[len(fixed):]  # the fixed tokens take the first ids
    characters = [token for token in rest if len(token) == 1]
    merged = [token for token in rest if len(token) > 1]
    if not characters:
        raise ValueError(f"vocab input files {', '.join(map(str, paths))} hold no text: pass text files")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / "vocab.txt"
    path.write_text("".join(f"{token}\n" for token in (*SPECIAL_TOKENS, *characters, *continuing, *merged)),
                    encoding="utf-8")
    return path


def _train_wordpiece(paths: list[Path], vocab_size: int, min_frequency: int, do_lower_case: bool,
                     fixed_tokens: tuple[str, ...], show_progress: bool) -> list[str]:
    """The tokens `tokenizers`' WordPiece trainer learns, by id; fixed_tokens take the first ids."""
    tokenizer = BertWordPieceTokenizer(lowercase=do_lower_case, strip_accents=do_lower_case, clean_text=True,
                                       handle_chinese_chars=True)
    try:
        tokenizer.train_from_iterator(_line_batches(paths), vocab_size=vocab_size, min_frequency=min_frequency,
                                      special_tokens=list(fixed_tokens), limit_alphabet=20000, wordpieces_prefix="##",
                                      show_progress=show_progress)
    except (ValueError, OSError):  # text_lines' one-line messages (not UTF-8, unreadable)
        raise
    except Exception as error:  # tokenizers raises a bare Exception
        raise ValueError(f"training the vocab on {', '.join(map(str, paths))} failed: {error}") from None
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.get)


def _line_batches(paths: list[Path], size: int = 1000) -> Iterator[list[str]]:
    """The files' lines as the text reader gives them (src/files/text_input.py), in batches for the trainer."""
    batch: list[str] = []
    for path in paths:
        for _, line in text_lines(path, "vocab input file", "pass plain-text files (one sentence a line)"):
            batch.append(line)
            if len(batch) == size:
                yield batch
                batch = []
    if batch:
        yield batch
