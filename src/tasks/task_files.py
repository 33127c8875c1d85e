"""Task data for finetuning: classification and NER files -> examples -> padded features.

Readers return examples that remember their file and line, so every error names both. Formats:
classification -- CLUE json lines (TNEWS / IFLYTEK "sentence", AFQMC "sentence1" + "sentence2", "label"),
GLUE tsv (CoLA without header; SST-2, MRPC, STS-B with theirs), plain `label<TAB>text[<TAB>text_b]`;
NER -- CLUENER2020 json lines (span labels), BIO/BIOES text (one `token tag` a line, blank line between
sentences), People's Daily POS-tagged text (nr/ns/nt -> PER/LOC/ORG), the MSRA XML release as the model zoo's
finetune_data_preprocess.py reads it (characters tagged S_/B_/M_/E_ + TYPE).
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ElementTree
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from src.data.corpus import peoples_daily_words
from src.data.tokenization import FullTokenizer
from src.files.text_input import read_text, text_lines

CLASSIFICATION_FORMATS = ("clue_json", "glue_tsv", "label_text")
NER_FORMATS = ("cluener_json", "bio", "peoples_daily", "msra_xml")
ZOO_TAG_PREFIXES = ("S_", "B_", "M_", "E_")  # the model zoo's NER tags, in its label-id order
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
    return text_lines(path, "data file")


def _json_lines(path: str | Path) -> Iterator[tuple[str, dict]]:
    for number, line in _lines(path):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}:{number} is not valid JSON ({error.msg}): one JSON object a line is "
                             f"expected; fix or remove that line") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number} is JSON but not an object: one {{...}} a line is expected")
        yield f"{path}:{number}", row


def _require(examples: list, path: str | Path, file_format: str) -> list:
    if not examples:
        raise ValueError(f"data file {path} holds no examples: it is empty or not {file_format}; pass a "
                         f"{file_format} file or the --input_format it is in")
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
        return _require(examples, path, file_format)
    if file_format == "glue_tsv":
        return _require(_read_glue_tsv(path), path, file_format)
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
        return _require(examples, path, file_format)
    raise ValueError(f"unknown classification format '{file_format}': use one of {', '.join(CLASSIFICATION_FORMATS)}")


def _read_glue_tsv(path: str | Path) -> list[TextExample]:
    # GLUE's tsv files are unquoted (csv.QUOTE_NONE): a row is a line split at tabs (an empty line: no column)
    numbered = [(number, line.split("\t") if line else []) for number, line in _lines(path)]
    if not numbered:
        return []
    header = numbered[0][1]
    if len(header) == 4 and header[1] in ("0", "1"):  # CoLA: source, label, original label, sentence; no header
        return [TextExample(r[3], None, r[1], f"{path}:{n}") for n, r in numbered]
    columns = {name: index for index, name in enumerate(header)}
    for text_a, text_b, label in (("sentence", None, "label"), ("#1 String", "#2 String", "Quality"),
                                  ("sentence1", "sentence2", "score"), ("sentence1", "sentence2", "label"),
                                  ("question", "sentence", "label")):
        if text_a in columns and label in columns and (text_b is None or text_b in columns):
            examples = []
            for number, row in numbered[1:]:
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
            if not isinstance(text, str):
                raise ValueError(f"{source} lacks a \"text\" string: not CLUENER json")
            tags = ["O"] * len(text)
            for start, end, entity_type, _ in cluener_spans(row, source):
                tags[start:end + 1] = [f"B-{entity_type}"] + [f"I-{entity_type}"] * (end - start)
            examples.append(TaggedExample(list(text), tags, source))
        return _require(examples, path, file_format)
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
        return _require(examples, path, file_format)
    if file_format == "msra_xml":
        return read_msra_xml(path)
    if file_format == "peoples_daily":
        examples = []
        for number, line in _lines(path):
            tokens, tags = peoples_daily_bio(line)
            if tokens:
                examples.append(TaggedExample(tokens, tags, f"{path}:{number}"))
        return _require(examples, path, file_format)
    raise ValueError(f"unknown NER format '{file_format}': use one of {', '.join(NER_FORMATS)}")


def read_msra_xml(path: str | Path, class_filter: set[str] | None = None) -> list[TaggedExample]:
    """The MSRA XML release: the root's children are sentences, theirs are phrases, and a phrase's child
    elements are labelled words (`<NAMEX TYPE="PERSON">...</NAMEX>`). Each character of a labelled word whose
    element tag is in class_filter (every tag when None) is tagged S_/B_/M_/E_ + its TYPE, as the model zoo does;
    every other character is O. White space is left out (the tagger reads characters). GB18030 or UTF-8."""
    text = read_text(path, "data file", fallback_encoding="gb18030")
    text = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)  # the declared encoding no longer applies to decoded text
    try:
        root = ElementTree.fromstring(text)
    except ElementTree.ParseError as error:
        raise ValueError(f"{path}:{error.position[0]} is not well-formed XML ({error.msg.split(':')[0]}): "
                         f"fix the file, or pass --data_format bio for BIO text") from None
    examples = []
    for index, sentence in enumerate(root):
        characters: list[str] = []
        tags: list[str] = []

        def add(piece: str | None, entity_type: str | None = None, *,
                characters: list[str] = characters, tags: list[str] = tags) -> None:
            piece = "".join((piece or "").split())
            characters.extend(piece)
            if entity_type is None or not piece:
                tags.extend("O" * len(piece))
            else:
                tags.extend([f"S_{entity_type}"] if len(piece) == 1 else
                            [f"B_{entity_type}", *[f"M_{entity_type}"] * (len(piece) - 2), f"E_{entity_type}"])

        add(sentence.text)
        for phrase in sentence:
            add(phrase.text)
            for word in phrase:
                labelled = class_filter is None or word.tag in class_filter
                if labelled and word.get("TYPE") is None and (word.text or "").strip():
                    raise ValueError(f"{path}: sentence {index + 1} has a <{word.tag}> without a TYPE attribute; "
                                     f"add TYPE=\"...\" or leave {word.tag} out of --class_filter")
                add("".join(word.itertext()), word.get("TYPE") if labelled else None)
                add(word.tail)
            add(phrase.tail)
        if characters:
            examples.append(TaggedExample(characters, tags, f"{path}: sentence {index + 1}"))
    return _require(examples, path, "msra_xml")


def cluener_spans(row: dict, source: str) -> list[tuple[int, int, str, str]]:
    """(start, end, type, entity) of a CLUENER row's "label" ({type: {entity: [[start, end], ...]}}, end
    inclusive), sorted by start; each span must lie in the text, be non-empty, not reversed, spell its entity,
    and overlap no other span (one BIO tag a character cannot hold two entities). Exact repeats count once."""
    text, labels = row["text"], row.get("label") or {}
    if not isinstance(labels, dict) or not all(isinstance(spans, dict) for spans in labels.values()):
        raise ValueError(f"{source}: \"label\" is not {{type: {{entity: [[start, end], ...]}}}}: not CLUENER json")
    found = set()
    for entity_type, spans in labels.items():
        for entity, positions in spans.items():
            for position in positions if isinstance(positions, list) else [positions]:
                if (not isinstance(position, list) or len(position) != 2
                        or not all(isinstance(i, int) and not isinstance(i, bool) for i in position)):
                    raise ValueError(f"{source}: {entity_type} '{entity}' has span {json.dumps(position)}; a span "
                                     f"is [start, end], two integer character offsets, end inclusive")
                start, end = position
                where = f"{source}: {entity_type} '{entity}' span [{start}, {end}]"
                if not entity or end == start - 1:
                    raise ValueError(f"{where} is empty: a span covers at least one character "
                                     f"([start, end], end inclusive); fix or remove it")
                if end < start:
                    raise ValueError(f"{where} is reversed (end before start): write it [{end}, {start}] "
                                     f"if that is the entity, else fix the offsets")
                if start < 0 or end >= len(text):
                    raise ValueError(f"{where} is out of range of the text's {len(text)} characters "
                                     f"(offsets 0..{len(text) - 1}); fix the offsets")
                if text[start:end + 1] != entity:
                    raise ValueError(f"{where} is '{text[start:end + 1]}' but the label says "
                                     f"'{entity}'; fix the offsets")
                found.add((start, end, entity_type, entity))
    spans = sorted(found)
    for previous, span in zip(spans, spans[1:]):
        if span[0] <= previous[1]:
            raise ValueError(f"{source}: {span[2]} '{span[3]}' span [{span[0]}, {span[1]}] overlaps "
                             f"{previous[2]} '{previous[3]}' span [{previous[0]}, {previous[1]}]: BIO tags hold "
                             f"one entity a character; keep one of the two")
    return spans


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
    """label2id json ({"label": id}) or a text file with one label a line (id = line number, from 0).

    The ids must be exactly 0..n-1: each label once, each id once, no gaps (they index the model's outputs).
    """
    path = Path(path)
    text = read_text(path, "label2id file", "pass a json {label: id} or a text file with one label a line")
    if not text.strip():
        raise ValueError(f"label2id file {path} is empty: write a json {{label: id}} or one label a line")
    if path.suffix == ".json":
        return _check_ids(_label2id_json(path, text), path)
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    label2id, seen = {}, {}
    for index, line in enumerate(lines):
        label = line.strip()
        if not label:
            raise ValueError(f"{path}:{index + 1} is blank inside the label list (one label a line, id = line "
                             f"number); remove the blank line")
        if label in seen:
            raise ValueError(f"{path}:{index + 1}: label '{label}' is also on line {seen[label]}; each label "
                             f"once, remove one of them")
        seen[label] = index + 1
        label2id[label] = index
    return label2id


def load_ner_label2id(path: str | Path) -> dict[str, int]:
    """NER tags -> ids from a label2id file (load_label2id), or from the model zoo's label list: entity types
    only, one a line, no "O" and no tag prefix ("PERSON"). That list stands for O, then S_, B_, M_, E_ of each
    type in order, the ids the zoo's convert_labels_to_index gives."""
    label2id = load_label2id(path)
    if (Path(path).suffix == ".json" or "O" in label2id
            or any(re.match(r"[BIMESO][-_]", label) for label in label2id)):
        return label2id
    tags = ["O", *(f"{prefix}{entity_type}" for entity_type in label2id for prefix in ZOO_TAG_PREFIXES)]
    return {tag: index for index, tag in enumerate(tags)}


def _label2id_json(path: Path, text: str) -> dict[str, int]:
    def unique(pairs: list[tuple[str, object]]) -> dict:
        repeated = sorted(key for key, count in Counter(key for key, _ in pairs).items() if count > 1)
        if repeated:
            raise ValueError(f"label2id file {path} lists {', '.join(map(repr, repeated))} more than once; "
                             f"each label once")
        return dict(pairs)

    try:
        label2id = json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as error:
        raise ValueError(f"label2id file {path}:{error.lineno} is not valid json ({error.msg}): write a json "
                         f"object {{label: id}}") from None
    if not isinstance(label2id, dict) or not label2id:
        raise ValueError(f"label2id file {path} is not a non-empty json object of label -> integer id")
    bad = [label for label, index in label2id.items() if not isinstance(index, int) or isinstance(index, bool)]
    if bad:
        raise ValueError(f"label2id file {path}: the ids of {', '.join(map(repr, bad))} are not integers "
                         f"({', '.join(json.dumps(label2id[label]) for label in bad)}); ids are 0..n-1")
    return label2id


def _check_ids(label2id: dict[str, int], path: Path) -> dict[str, int]:
    by_id: dict[int, list[str]] = {}
    for label, index in label2id.items():
        by_id.setdefault(index, []).append(label)
    shared = [f"{' and '.join(map(repr, labels))} share id {index}" for index, labels in sorted(by_id.items())
              if len(labels) > 1]
    if shared:
        raise ValueError(f"label2id file {path}: {'; '.join(shared)}; give each label its own id (0..n-1)")
    count = len(label2id)
    outside = sorted(index for index in by_id if not 0 <= index < count)
    missing = sorted(set(range(count)) - set(by_id))
    if outside or missing:
        problems = ([f"missing {', '.join(map(str, missing))}"] if missing else []) + (
            [f"out of range {', '.join(f'{by_id[i][0]!r}: {i}' for i in outside)}"] if outside else [])
        raise ValueError(f"label2id file {path}: ids must be exactly 0..{count - 1} for its {count} labels "
                         f"({'; '.join(problems)}); renumber them")
    return label2id


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
