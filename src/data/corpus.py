"""Raw text -> documents: the plain-text format Google's create_pretraining_data.py reads.

The format: one sentence per line, documents separated by blank lines. This module makes it from
wikiextractor output (Wikipedia dumps) and from People's Daily segmented text, and streams it back.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Iterator

import sentencex

from src.files.text_input import text_lines

# Chinese keeps its punctuation rule: a sentence ends after 。！？； and any closing quotes or brackets that follow
# them (“好。” stays whole); Latin-script sentences inside Chinese text end at . ! ? before white space and an
# upper-case letter, a quote or a digit. Every other language goes to sentencex, which knows ~300 languages.
CHINESE_LANGUAGES = frozenset({"zh", "zh-yue", "yue", "wuu", "gan", "lzh", "zh-classical"})
_CHINESE_END = re.compile(r"[。！？；][。！？；”’」』）》]*")
_LATIN_END = re.compile(r"(?:(?<=[.!?])|(?<=[.!?][\"”')\]]))\s+(?=[A-Z\"“(\[0-9])")
# wikiextractor leaves placeholders for formulas and code, and lines of bare punctuation: nothing to learn from.
_MARKUP_DEBRIS = re.compile(r"^(?:(?:formula|codice)_\d+\W*|\W*)$")
_DOC_START = re.compile(r'<doc id="[^"]*"[^>]*>')


def split_sentences(paragraph: str, language: str) -> list[str]:
    """Sentences of a paragraph, stripped, none dropped. language: a Wikipedia language code (en, ru, zh, ...)."""
    if language in CHINESE_LANGUAGES:
        marked = _LATIN_END.sub("\n", _CHINESE_END.sub(lambda end: end.group() + "\n", paragraph))
        pieces = marked.split("\n")
    else:
        pieces = sentencex.segment(language, paragraph)
    return [sentence.strip() for sentence in pieces if sentence.strip()]


def wikiextractor_documents(lines: Iterable[str], language: str) -> Iterator[list[str]]:
    """Documents (lists of sentences) from wikiextractor output: <doc ...> title, paragraphs </doc>.

    The title line is dropped; section headings and short sentences stay (they are the document's structure);
    markup debris (formula_1, codice_2, bare punctuation) goes.
    """
    document: list[str] | None = None
    skip_title = False
    for line in lines:
        line = line.strip()
        if _DOC_START.match(line):
            document, skip_title = [], True
        elif line == "</doc>":
            if document:
                yield document
            document = None
        elif document is not None and line:
            if skip_title:
                skip_title = False
                continue
            document.extend(s for s in split_sentences(line, language) if not _MARKUP_DEBRIS.match(s))


_PEOPLES_DAILY_TOKEN = re.compile(r"^\[?(?P<word>.+?)/(?P<tag>[A-Za-z]+)\]?(?:[a-z]+)?$")


def peoples_daily_words(line: str) -> list[tuple[str, str]]:
    """(word, part-of-speech tag) pairs of a People's Daily line: `word/tag` separated by two spaces.

    Bracketed compounds ("[中国/ns  政府/n]nt") are read word by word; the compound tag is dropped.
    """
    pairs = []
    for item in line.split():
        match = _PEOPLES_DAILY_TOKEN.match(item)
        if match:
            pairs.append((match["word"], match["tag"]))
    return pairs


def peoples_daily_documents(lines: Iterable[str], sentences_per_document: int = 8) -> Iterator[list[str]]:
    """Plain Chinese sentences from the tagged People's Daily corpus, grouped into documents.

    The corpus has one paragraph a line and no article boundaries; consecutive paragraphs are grouped.
    """
    document: list[str] = []
    for line in lines:
        text = "".join(word for word, _ in peoples_daily_words(line))
        document.extend(split_sentences(text, "zh"))
        if len(document) >= sentences_per_document:
            yield document
            document = []
    if document:
        yield document


def write_documents(documents: Iterable[list[str]], path: str | Path) -> int:
    """Write documents in the one-sentence-a-line, blank-line-between format; returns how many."""
    count = 0
    with open(path, "w", encoding="utf-8") as handle:
        for document in documents:
            handle.write("\n".join(document) + "\n\n")
            count += 1
    return count


def read_documents(path: str | Path) -> Iterator[list[str]]:
    """Stream documents back from a text file in that format (memory: one document)."""
    document: list[str] = []
    for _, line in text_lines(path, "corpus file", "pass text files (one sentence a line, a blank line between "
                                                   "documents)"):
        line = line.strip()
        if line:
            document.append(line)
        elif document:
            yield document
            document = []
    if document:
        yield document
