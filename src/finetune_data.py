"""Task data for finetuning: classification and NER files -> examples -> padded features.

Readers return examples that remember their file and line, so every error names both. Formats:
classification -- CLUE json lines (TNEWS / IFLYTEK "sentence", AFQMC "sentence1" + "sentence2", "label"),
GLUE tsv (CoLA without header; SST-2, MRPC, STS-B with theirs), plain `label<TAB>text[<TAB>text_b]`;
NER -- CLUENER2020 json lines (span labels), BIO/BIOES text (one `token tag` a line, blank line between
sentences), People's Daily POS-tagged text (nr/ns/nt -> PER/LOC/ORG).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from src.corpus import peoples_daily_words
from src.tokenization import FullTokenizer

CLASSIFICATION_FORMATS = ("clue_json", "glue_tsv", "label_text")
NER_FORMATS = ("cluener_json", "bio", "peoples_daily")
PEOPLES_DAILY_ENTITIES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}


@dataclass(frozen=True)
class TextExample:
    text_a: str
    text_b: str | None
    label: str
    source: str  # "file:line"


@dataclass(frozen=True)
class TaggedExample:
    tokens: list[str]
    tags: list[str]
    source: str


def _lines(path: str | Path) -> Iterator[tuple[int, str]]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"data file {path} does not exist")
    with open(path, encoding="utf-8") as handle:
        yield from enumerate(handle, 1)


def _json_lines(path: str | Path) -> Iterator[tuple[str, dict]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            yield f"{path}:{number}", json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not valid JSON ({error.msg}): one JSON object a line is "
                             f"expected; fix or remove that line") from None


def _require(examples: list, path: str | Path) -> list:
    if not examples:
        raise ValueError(f"data file {path} holds no examples: it is empty or in another format")
    return examples


def read_classification(path: str | Path, file_format: str) -> list[TextExample]:
    """Examples of a classification (or regression: the label is then the number) file."""
    if file_format == "clue_json":
        examples = []
        for source, row in _json_lines(path):
            text_a = row.get("sentence", row.get("sentence1"))
            if text_a is None or "label" not in row:
                raise ValueError(f"{source} lacks \"sentence\" (or \"sentence1\") or \"label\": not CLUE "
                                 f"classification json")
            examples.append(TextExample(text_a, row.get("sentence2"), str(row["label"]), source))
        return _require(examples, path)
    if file_format == "glue_tsv":
        return _require(_read_glue_tsv(path), path)
    if file_format == "label_text":
        examples = []
        for number, line in _lines(path):
            if not line.strip():
                continue
            fields = line.rstrip("\n").split("\t")
            if len(fields) not in (2, 3):
                raise ValueError(f"{path}:{number} has {len(fields)} tab-separated fields: label<TAB>text"
                                 f"[<TAB>text_b] is expected")
            examples.append(TextExample(fields[1], fields[2] if len(fields) == 3 else None, fields[0],
                                        f"{path}:{number}"))
        return _require(examples, path)
    raise ValueError(f"unknown classification format '{file_format}': use one of {', '.join(CLASSIFICATION_FORMATS)}")


def _read_glue_tsv(path: str | Path) -> list[TextExample]:
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows:
        return []
    header = rows[0]
    if len(header) == 4 and header[1] in ("0", "1"):  # CoLA: source, label, original label, sentence; no header
        return [TextExample(r[3], None, r[1], f"{path}:{n}") for n, r in enumerate(rows, 1)]
    columns = {name: index for index, name in enumerate(header)}
    for text_a, text_b, label in (("sentence", None, "label"), ("#1 String", "#2 String", "Quality"),
                                  ("sentence1", "sentence2", "score"), ("sentence1", "sentence2", "label"),
                                  ("question", "sentence", "label")):
        if text_a in columns and label in columns and (text_b is None or text_b in columns):
            examples = []
            for number, row in enumerate(rows[1:], 2):
                if len(row) != len(header):
                    raise ValueError(f"{path}:{number} has {len(row)} columns but the header has {len(header)}")
                examples.append(TextExample(row[columns[text_a]], row[columns[text_b]] if text_b else None,
                                            row[columns[label]], f"{path}:{number}"))
            return examples
    raise ValueError(f"{path}:1 header {header} is not one of the GLUE tasks' (CoLA, SST-2, MRPC, STS-B, QNLI)")


def read_ner(path: str | Path, file_format: str) -> list[TaggedExample]:
    """Sentences of single-character or word tokens with BIO (or BIOES) tags."""
    if file_format == "cluener_json":
        examples = []
        for source, row in _json_lines(path):
            text = row.get("text")
            if text is None:
                raise ValueError(f"{source} lacks \"text\": not CLUENER json")
            tags = ["O"] * len(text)
            for entity_type, spans in (row.get("label") or {}).items():
                for entity, positions in spans.items():
                    for start, end in positions:
                        if text[start:end + 1] != entity:
                            raise ValueError(f"{source}: span [{start}, {end}] is '{text[start:end + 1]}' but the "
                                             f"label says '{entity}'; fix the offsets")
                        tags[start:end + 1] = [f"B-{entity_type}"] + [f"I-{entity_type}"] * (end - start)
            examples.append(TaggedExample(list(text), tags, source))
        return _require(examples, path)
    if file_format == "bio":
        examples, tokens, tags, first = [], [], [], 1
        for number, line in _lines(path):
            fields = line.split()
            if not fields:
                if tokens:
                    examples.append(TaggedExample(tokens, tags, f"{path}:{first}"))
                tokens, tags, first = [], [], number + 1
                continue
            if len(fields) != 2:
                raise ValueError(f"{path}:{number} has {len(fields)} fields: 'token tag' is expected")
            tokens.append(fields[0])
            tags.append(fields[1])
        if tokens:
            examples.append(TaggedExample(tokens, tags, f"{path}:{first}"))
        return _require(examples, path)
    if file_format == "peoples_daily":
        examples = []
        for number, line in _lines(path):
            tokens, tags = peoples_daily_bio(line)
            if tokens:
                examples.append(TaggedExample(tokens, tags, f"{path}:{number}"))
        return _require(examples, path)
    raise ValueError(f"unknown NER format '{file_format}': use one of {', '.join(NER_FORMATS)}")


def peoples_daily_bio(line: str) -> tuple[list[str], list[str]]:
    """Characters and BIO tags of a People's Daily line; consecutive nr words (surname, given name) form one PER."""
    characters, tags = [], []
    previous = None
    for word, pos in peoples_daily_words(line):
        entity = PEOPLES_DAILY_ENTITIES.get(pos)
        continues = entity == "PER" and previous == "PER"
        for index, character in enumerate(word):
            characters.append(character)
            if entity is None:
                tags.append("O")
            else:
                tags.append(f"{'I' if index or continues else 'B'}-{entity}")
        previous = entity
    return characters, tags


def load_label2id(path: str | Path) -> dict[str, int]:
    """label2id json ({"label": id}) or a text file with one label a line (id = line number)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"label2id file {path} does not exist: pass a json {{label: id}} or a text file "
                                f"with one label a line")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        try:
            return {str(label): int(index) for label, index in json.loads(text).items()}
        except (json.JSONDecodeError, AttributeError, ValueError):
            raise ValueError(f"label2id file {path} is not a json object of label -> integer id") from None
    return {line.strip(): index for index, line in enumerate(text.splitlines()) if line.strip()}


def label_id(label2id: dict[str, int], label: str, source: str, label_file: str | Path) -> int:
    if label not in label2id:
        raise ValueError(f"{source}: label '{label}' is not in {label_file}; add it there or fix the line")
    return label2id[label]


def classification_features(example: TextExample, tokenizer: FullTokenizer, label: int | float,
                            max_seq_length: int) -> dict[str, np.ndarray]:
    """[CLS] a [SEP] (b [SEP]) with the longer text truncated first, padded to max_seq_length."""
    tokens_a = tokenizer.tokenize(example.text_a)
    tokens_b = tokenizer.tokenize(example.text_b) if example.text_b is not None else []
    budget = max_seq_length - (3 if tokens_b else 2)
    while len(tokens_a) + len(tokens_b) > budget:
        (tokens_a if len(tokens_a) >= len(tokens_b) else tokens_b).pop()
    tokens = ["[CLS]", *tokens_a, "[SEP]"] + ([*tokens_b, "[SEP]"] if tokens_b else [])
    segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1 if tokens_b else 0)
    features = _pad(tokenizer.convert_tokens_to_ids(tokens), segment_ids, max_seq_length)
    features["label_ids"] = np.array([label], np.float32 if isinstance(label, float) else np.int64)
    return features


def tagging_features(example: TaggedExample, tokenizer: FullTokenizer, label2id: dict[str, int],
                     max_seq_length: int, label_file: str | Path) -> dict[str, np.ndarray]:
    """One WordPiece token per input token (its first piece; [UNK] when it has none), tags aligned; [CLS] and
    [SEP] tagged O. Longer sentences are cut to max_seq_length - 2 tokens."""
    pieces = [tokenizer.tokenize(token)[:1] or ["[UNK]"] for token in example.tokens]
    kept = max_seq_length - 2
    tokens = ["[CLS]", *(p[0] for p in pieces[:kept]), "[SEP]"]
    outside = label_id(label2id, "O", example.source, label_file)
    labels = [outside] + [label_id(label2id, tag, example.source, label_file) for tag in example.tags[:kept]]
    labels.append(outside)
    features = _pad(tokenizer.convert_tokens_to_ids(tokens), [0] * len(tokens), max_seq_length)
    features["label_ids"] = np.array(labels + [outside] * (max_seq_length - len(labels)), np.int64)
    return features


def _pad(input_ids: list[int], segment_ids: list[int], max_seq_length: int) -> dict[str, np.ndarray]:
    pad = max_seq_length - len(input_ids)
    return {"input_ids": np.array(input_ids + [0] * pad, np.int64),
            "input_mask": np.array([1] * len(input_ids) + [0] * pad, np.int64),
            "segment_ids": np.array(segment_ids + [0] * pad, np.int64)}
