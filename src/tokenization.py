"""BERT tokenization with Google's FullTokenizer semantics, computed by the `tokenizers` package.

Google's tokenizer (and HuggingFace's slow BertTokenizer): clean control characters, put spaces around CJK
characters, optionally lower-case and strip accents, split on whitespace and punctuation, then greedy
longest-match WordPiece with "##" continuations and [UNK] for words that cannot be split (or are longer than
100 characters). `tokenizers`' BertWordPieceTokenizer implements the same steps in Rust, about 15x faster than
mindspore.dataset.text.BertTokenizer, whose lower-casing also maps full-width punctuation to ASCII.
tests/test_tokenization.py checks equality with the slow reference on real Chinese and English text.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

from tokenizers import BertWordPieceTokenizer

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def load_vocab(vocab_file: str | Path) -> dict[str, int]:
    """vocab.txt (one token a line, id = line number) -> {token: id}, checking the special tokens are there."""
    path = Path(vocab_file)
    if not path.is_file():
        raise FileNotFoundError(f"vocab file {path} does not exist: pass a BERT vocab.txt "
                                f"or make one with tools/create_vocab.py")
    with open(path, encoding="utf-8") as handle:
        tokens = [line.rstrip("\n") for line in handle]
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

    def tokenize(self, text: str) -> list[str]:
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def basic_tokenize(self, text: str) -> list[str]:
        """Google's BasicTokenizer: cleaning, CJK splitting, lower-casing and accents, punctuation splitting --
        the words before WordPiece (SQuAD post-processing aligns predictions with them)."""
        backend = self._tokenizer._tokenizer
        return [word for word, _ in backend.pre_tokenizer.pre_tokenize_str(backend.normalizer.normalize_str(text))]

    def tokenize_batch(self, texts: Iterable[str]) -> list[list[str]]:
        return [encoding.tokens for encoding in self._tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        unk = self.vocab["[UNK]"]
        return [self.vocab.get(token, unk) for token in tokens]

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.inv_vocab[int(index)] for index in ids]


def train_vocab(files: list[str | Path], output_dir: str | Path, vocab_size: int, min_frequency: int = 2,
                do_lower_case: bool = True) -> Path:
    """Train a WordPiece vocab.txt on plain-text files with `tokenizers` (for users without a BERT vocab).

    Every CJK character seen is kept (limit_alphabet is large): a Chinese model needs single characters.
    """
    tokenizer = BertWordPieceTokenizer(lowercase=do_lower_case, strip_accents=do_lower_case, clean_text=True,
                                       handle_chinese_chars=True)
    tokenizer.train([str(f) for f in files], vocab_size=vocab_size, min_frequency=min_frequency,
                    special_tokens=list(SPECIAL_TOKENS), limit_alphabet=20000, wordpieces_prefix="##")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save_model(str(output_dir))
    return output_dir / "vocab.txt"
