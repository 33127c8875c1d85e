"""predict.py's inputs and outputs: text files (or stdin) in the formats users hold, JSON lines or TSV out.

Every input item remembers its line, so outputs can be matched to inputs and errors name file and line. Empty lines are
skipped and counted, never sent to the model. Files and standard input are read by src/files/text_input.py: a BOM and
the line ends (LF, CRLF) are removed, nothing else, so offsets index the line as given.
"""
from __future__ import annotations

import contextlib
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Iterator

from src.disk_space import DiskFull, disk_full_message, is_disk_full
from src.files.text_input import source_name, text_lines
from src.tasks.squad import read_squad_examples

INPUT_FORMATS = {
    "classification": ("text", "label_text", "clue_json"),
    "ner": ("text", "cluener_json"),
    "squad": ("jsonl", "squad_json"),
}
OUTPUT_FORMATS = {
    "classification": ("jsonl", "tsv"),
    "ner": ("jsonl", "cluener"),
    "squad": ("jsonl", "squad_predictions"),
}


@dataclass
class Inputs:
    # classification (text_a, text_b); ner text; squad (id, question, context)
    items: list = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    empty_lines: list[int] = field(default_factory=list)


def _open_lines(path: str) -> Iterator[tuple[int, str]]:
    return text_lines(path, "--input_file", "pass a text file, or - for standard input")


def _json(line: str, where: str) -> dict:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where} is not valid JSON ({error.msg}): one JSON object a line is expected") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where} is JSON but not an object: one {{...}} a line is expected")
    return row


def _field(row: dict, names: tuple[str, ...], where: str, what: str) -> str:
    for name in names:
        if isinstance(row.get(name), str):
            return row[name]
    raise ValueError(f"{where} has no {' or '.join(repr(n) for n in names)} string: {what} is expected")


def read_inputs(path: str, task: str, input_format: str) -> Inputs:
    if input_format not in INPUT_FORMATS[task]:
        raise ValueError(f"--input_format {input_format} is not one of {task}'s: "
                         f"{', '.join(INPUT_FORMATS[task])}")
    inputs = Inputs()
    if input_format == "squad_json":
        if path == "-":
            raise ValueError("--input_format squad_json reads a file: pass --input_file PATH")
        for example in read_squad_examples(path):
            inputs.items.append((example.qas_id, example.question_text, example.context))
            inputs.lines.append(len(inputs.lines) + 1)
        return inputs
    for number, line in _open_lines(path):
        where = f"{source_name(path)}:{number}"
        if not line.strip():
            inputs.empty_lines.append(number)
            continue
        if input_format == "text":
            item = tuple(line.split("\t", 1)) if task == "classification" else line
            if task == "classification" and len(item) == 1:
                item = (line, None)
        elif input_format == "label_text":
            fields = line.split("\t")
            if len(fields) not in (2, 3):
                raise ValueError(f"{where} has {len(fields)} tab-separated fields: label<TAB>text[<TAB>text_b] "
                                 f"is expected")
            item = (fields[1], fields[2] if len(fields) == 3 else None)
        elif input_format == "clue_json":
            row = _json(line, where)
            item = (_field(row, ("sentence", "sentence1"), where, "CLUE classification json"),
                    row.get("sentence2") if isinstance(row.get("sentence2"), str) else None)
        elif input_format == "cluener_json":
            item = _field(_json(line, where), ("text",), where, "CLUENER json")
        else:  # jsonl questions
            row = _json(line, where)
            item = (str(row.get("id", number)), _field(row, ("question",), where, "{\"question\", \"context\"}"),
                    _field(row, ("context",), where, "{\"question\", \"context\"}"))
        inputs.items.append(item)
        inputs.lines.append(number)
    return inputs


@dataclass
class ScoredInputs:
    """A labelled task-data file of the kind predict.py reads: its inputs and each one's gold answer (a label
    name; NER: the set of (type, start, end) entity spans, end exclusive)."""

    path: str
    inputs: Inputs
    gold: list


SCORED_FORMATS = {"classification": "label_text (label<TAB>text[<TAB>text_b]) or clue_json (with \"label\")",
                  "ner": "cluener_json (with \"label\")"}


def read_scored_inputs(path: str, task: str) -> ScoredInputs:
    """A labelled file for a task's score: classification label_text or clue_json (a first line starting with
    "{"), NER cluener_json; every row must have its gold answer. One line naming file and line if not."""
    if task not in SCORED_FORMATS:
        raise ValueError(f"no score is measured for {task} here")
    if not Path(path).is_file():
        what = "is a directory" if Path(path).is_dir() else "does not exist"
        raise FileNotFoundError(f"--calibration_file {path} {what}: pass a labelled {task} file, "
                                f"{SCORED_FORMATS[task]}")
    inputs, gold = Inputs(), []
    for number, line in text_lines(path, "--calibration_file", f"pass a labelled {task} file"):
        where = f"{path}:{number}"
        if not line.strip():
            inputs.empty_lines.append(number)
            continue
        if task == "ner" or line.lstrip().startswith("{"):
            row = _json(line, where)
            text = _field(row, ("text",) if task == "ner" else ("sentence", "sentence1"), where,
                          SCORED_FORMATS[task])
            if "label" not in row:
                raise ValueError(f"{where} has no \"label\": a labelled {task} file is expected, "
                                 f"{SCORED_FORMATS[task]}")
            if task == "ner":
                inputs.items.append(text)
                gold.append(_cluener_spans(row["label"], text, where))
            else:
                inputs.items.append((text, row.get("sentence2") if isinstance(row.get("sentence2"), str) else None))
                gold.append(str(row["label"]))
        else:
            fields = line.split("\t")
            if len(fields) not in (2, 3):
                raise ValueError(f"{where} has {len(fields)} tab-separated fields: label<TAB>text[<TAB>text_b] "
                                 f"is expected")
            inputs.items.append((fields[1], fields[2] if len(fields) == 3 else None))
            gold.append(fields[0])
        inputs.lines.append(number)
    if not inputs.items:
        raise ValueError(f"--calibration_file {path} has no records: pass a labelled {task} file, "
                         f"{SCORED_FORMATS[task]}")
    return ScoredInputs(path, inputs, gold)


def _cluener_spans(label, text: str, where: str) -> set[tuple[str, int, int]]:
    """CLUENER's {type: {entity text: [[start, end]]}} (end inclusive) as {(type, start, end exclusive)}."""
    try:
        spans = {(entity_type, int(start), int(end) + 1) for entity_type, entities in label.items()
                 for positions in entities.values() for start, end in positions}
    except (AttributeError, TypeError, ValueError):
        raise ValueError(f"{where}: \"label\" is not CLUENER's {{type: {{entity: [[start, end]]}}}}") from None
    if any(not 0 <= start < end <= len(text) for _, start, end in spans):
        raise ValueError(f"{where}: an entity's [start, end] lies outside its text of {len(text)} characters")
    return spans


class OutputFile:
    """Standard output, or a file written whole and renamed into place at the end (a reader never sees half of
    it; an interrupted run leaves no file). An existing file is replaced only with overwrite."""

    def __init__(self, path: str, overwrite: bool) -> None:
        self.path = Path(path) if path and path != "-" else None
        if self.path is not None:
            if self.path.exists() and not overwrite:
                raise ValueError(f"--output_file {self.path} exists: pass --overwrite true to replace it, or another "
                                 f"--output_file")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except (FileExistsError, NotADirectoryError):
                raise ValueError(f"--output_file {self.path}: {self.path.parent} is not a directory: pass a path in "
                                 f"a directory") from None
            self.partial = self.path.with_name(f".{self.path.name}.{os.getpid()}.partial")
            self.handle: IO[str] = open(self.partial, "w", encoding="utf-8")
        else:
            self.handle = sys.stdout

    def write(self, text: str) -> None:
        try:
            self.handle.write(text)
        except OSError as error:
            raise self._failed(error) from None

    def close(self) -> None:
        if self.path is not None:
            try:
                self.handle.close()
                os.replace(self.partial, self.path)
            except OSError as error:
                self.partial.unlink(missing_ok=True)
                raise self._failed(error) from None
        else:
            self.handle.flush()

    def abandon(self) -> None:
        if self.path is not None:
            with contextlib.suppress(OSError):  # a full disk fails the flush of what is thrown away anyway
                self.handle.close()
            self.partial.unlink(missing_ok=True)

    def _failed(self, error: OSError) -> Exception:
        return DiskFull(f"{disk_full_message(self.path or 'standard output', error)}; no --output_file was "
                        f"written") if is_disk_full(error) else error
