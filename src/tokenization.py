"""BERT tokenization with Google's FullTokenizer semantics, computed by the `tokenizers` package.

Google's tokenizer (and HuggingFace's slow BertTokenizer): clean control characters, put spaces around CJK
characters, optionally lower-case and strip accents, split on whitespace and punctuation, then greedy
longest-match WordPiece with "##" continuations and [UNK] for words that cannot be split (or are longer than
200 characters: Google's limit; HuggingFace's port and `tokenizers` default to 100). `tokenizers`'
BertWordPieceTokenizer implements the same steps in Rust, about 15x faster than mindspore.dataset.text.BertTokenizer,
whose lower-casing also maps full-width punctuation to ASCII. tests/test_tokenization.py checks equality with
Google's tokenization.py on every sentence of the shipped Chinese and English text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import BertWordPieceTokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
GOOGLE_MAX_WORD_CHARACTERS = 200  # a longer word is [UNK] (tokenization.WordpieceTokenizer)


def load_vocab(vocab_file: str | Path) -> dict[str, int]:
    """vocab.txt (one token a line, id = line number) -> {token: id}, checking the special tokens are there."""
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"vocab file {path} does not exist: pass a BERT vocab.txt "
                                f"or make one with tools/create_vocab.py")
    try:
        with open(path, encoding="utf-8") as handle:
            tokens = [line.rstrip("\n") for line in handle]
    except UnicodeDecodeError:
        raise ValueError(f"vocab file {not_utf8_message(path)}") from None
    while tokens and not tokens[-1]:
        tokens.pop()
    vocab = {token: index for index, token in enumerate(tokens)}
    missing = [token for token in SPECIAL_TOKENS if token not in vocab]
    if missing:
        raise ValueError(f"vocab file {path} lacks {', '.join(missing)}: it is not a BERT vocab.txt")
    return vocab


class FullTokenizer:
    """text -> WordPiece tokens -> ids, as google-research/bert tokenization.FullTokenizer."""

    def __init__(self, vocab_file: str | Path, do_lower_case: bool = True) -> None:
        self.vocab = load_vocab(vocab_file)
        self.inv_vocab = {index: token for token, index in self.vocab.items()}
        self._tokenizer = BertWordPieceTokenizer(self.vocab, lowercase=do_lower_case,
                                                 strip_accents=do_lower_case, clean_text=True,
                                                 handle_chinese_chars=True, unk_token="[UNK]")
        self._tokenizer._tokenizer.model.max_input_chars_per_word = GOOGLE_MAX_WORD_CHARACTERS

    def tokenize(self, text: str) -> list[str]:
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def basic_tokenize(self, text: str) -> list[str]:
        """Google's BasicTokenizer: cleaning, CJK splitting, lower-casing and accents, punctuation splitting --
        the words before WordPiece (SQuAD post-processing aligns predictions with them)."""
        backend = self._tokenizer._tokenizer
        return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))]

    def tokenize_batch(self, texts: Iterable[str]) -> list[list[str]]:
        return [encoding.tokens for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def ids_batch(self, texts: Iterable[str]) -> list[list[int]]:
        """The ids of tokenize_batch's tokens, without a vocabulary lookup per token. encode_batch_fast skips the
        character offsets, a quarter of the time (its encodings' token strings are empty: ids only)."""
        return [encoding.ids for encoding in
                self._tokenizer._tokenizer.encode_batch_fast(list(texts), add_special_tokens=False)]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        unk = self.vocab["[UNK]"]
        return [self.vocab.get(token, unk) for token in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.inv_vocab[int(index)] for index in ids]


def not_utf8_message(path: str | Path) -> str | None:
    """One line naming a file's first byte that is not UTF-8 (line, byte, offset) and the iconv command that
    converts it; None when the whole file is UTF-8."""
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, 1):  # no UTF-8 sequence holds the byte 0x0a, so lines split safely
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as error:
                encoding = "UTF-16" if number == 1 and raw[:2] in (b"\xff\xfe", b"\xfe\xff") else "GB18030"
                return (f"{path}:{number} is not UTF-8 text (byte 0x{raw[error.start]:02x} at offset "
                        f"{offset + error.start}): convert it with iconv -f {encoding} -t UTF-8 (or from its "
                        f"real encoding)")
            offset += len(raw)
    return None


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
        tokenizer.train([str(path) for path in paths], vocab_size=vocab_size, min_frequency=min_frequency,
                        special_tokens=list(fixed_tokens), limit_alphabet=20000, wordpieces_prefix="##",
                        show_progress=show_progress)
    except Exception as error:  # tokenizers raises a bare Exception ("stream did not contain valid UTF-8")
        for path in paths:
            message = not_utf8_message(path)
            if message:
                raise ValueError(message) from None
        raise ValueError(f"training the vocab on {', '.join(map(str, paths))} failed: {error}") from None
    vocab = tokenizer.get_vocab()
    return sorted(vocab, key=vocab.get)
