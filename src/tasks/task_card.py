"""What a finetuned model needs to be used on raw text, kept beside its checkpoints.

A checkpoint alone holds weights; to classify a sentence or tag a paragraph one also needs the vocab and the
tokenizer settings the records were made with, the label names in id order and the head (CRF or softmax,
pooling). tools/convert_task_data.py writes them for its records as `{records}.task.json`; a finetuning run
copies them beside its checkpoints, under its checkpoint prefix (`ner`, `ner_1`, ...):

    ner-3_360.ckpt   ner.task.json   ner.vocab.txt   ner.model.yaml

so the checkpoint directory describes itself: predict.py and export.py need nothing else.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from src.config import BertConfig, load_bert_config
from src.files.run_files import CHECKPOINT_NAME

TASKS = ("classification", "ner", "squad")
TOKEN_UNITS = ("character", "word")


@dataclass(frozen=True)
class TaskCard:
    task: str                        # classification | ner | squad
    max_seq_length: int
    do_lower_case: bool = True
    labels: tuple[str, ...] = ()     # label names in id order; empty for a regression and for SQuAD
    token_unit: str = "character"    # NER: raw text -> tagger tokens, a character each or a word each
    doc_stride: int = 128            # SQuAD windows
    max_query_length: int = 64
    vocab_sha256: str = ""           # of the vocab the records were made with
    vocab_file: str = ""             # records' card: that vocab's path
    num_class: int = 0               # a run's card: the head (1 for a regression)
    use_crf: bool = False
    classifier_pooling: str = "cls"

    def __post_init__(self) -> None:
        if self.task not in TASKS or self.token_unit not in TOKEN_UNITS:
            raise ValueError(f"task '{self.task}' / token_unit '{self.token_unit}' is not one of "
                             f"{TASKS} / {TOKEN_UNITS}")

    def to_json(self) -> str:
        values = dataclasses.asdict(self)
        values["labels"] = list(self.labels)
        return json.dumps(values, indent=1, ensure_ascii=False) + "\n"


def read_card(path: Path) -> TaskCard:
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
        values["labels"] = tuple(values.get("labels", ()))
        values.pop("int8", None)  # an int8 export's scores (export.py): about the file, not the task
        return TaskCard(**values)
    except (ValueError, TypeError) as error:
        raise ValueError(f"task card {path} is not a task card ({error}): re-create it with the tool that wrote "
                         f"it") from None


def records_card_path(records: str | Path) -> Path:
    return Path(f"{records}.task.json")


def write_records_card(records: str | Path, card: TaskCard) -> Path:
    path = records_card_path(records)
    _write_atomically(path, card.to_json())
    return path


def read_records_card(records: str | Path) -> TaskCard | None:
    """The card of records made by tools/convert_task_data.py; None for records made elsewhere."""
    path = records_card_path(records)
    return read_card(path) if path.is_file() else None


@dataclass(frozen=True)
class RunCard:
    """A finetuning run's description files, by the checkpoint prefix they share."""

    directory: Path
    prefix: str

    @property
    def card_file(self) -> Path:
        return self.directory / f"{self.prefix}.task.json"

    @property
    def vocab_file(self) -> Path:
        return self.directory / f"{self.prefix}.vocab.txt"

    @property
    def model_file(self) -> Path:
        return self.directory / f"{self.prefix}.model.yaml"

    def write(self, card: TaskCard, vocab: Path | None, model: BertConfig) -> None:
        """Write (or, for a resumed run, check) the files; a resumed run with other settings fails here, before
        training, rather than leave a description that does not fit its checkpoints."""
        card = dataclasses.replace(card, vocab_file="")
        self._put(self.card_file, card.to_json())
        self._put(self.model_file, _yaml_of(model))
        if vocab is not None:
            self._put(self.vocab_file, Path(vocab).read_text(encoding="utf-8"))

    def _put(self, path: Path, content: str) -> None:
        if path.is_file():
            if path.read_text(encoding="utf-8") != content:
                raise ValueError(f"{path} describes this run's checkpoints with other settings (labels, vocab or "
                                 f"model) than now: continue the run with the settings it started with, or pass "
                                 f"another --save_finetune_checkpoint_path")
            return
        _write_atomically(path, content)

    def read(self) -> tuple[TaskCard, Path | None, BertConfig]:
        if not self.card_file.is_file():
            raise FileNotFoundError(
                f"{self.card_file} does not exist: the checkpoint was written without its description (by an older "
                f"version, or copied alone); copy the run's {self.prefix}.task.json, .vocab.txt and .model.yaml "
                f"beside it, or finetune again")
        card = read_card(self.card_file)
        if not self.model_file.is_file():
            raise FileNotFoundError(f"{self.model_file} does not exist: copy it beside {self.card_file}")
        return card, self.vocab_file if self.vocab_file.is_file() else None, load_bert_config(self.model_file)


def run_card_of(checkpoint: str | Path) -> RunCard:
    """The description files of the run that wrote checkpoint (`{prefix}-{epoch}_{step}.ckpt`)."""
    checkpoint = Path(checkpoint)
    match = CHECKPOINT_NAME.match(checkpoint.name)
    if not match:
        raise ValueError(f"checkpoint {checkpoint} is not named {{prefix}}-{{epoch}}_{{step}}.ckpt as finetuning "
                         f"writes it: pass a checkpoint of run_classifier.py, run_ner.py or run_squad.py")
    return RunCard(checkpoint.parent, match["prefix"])


def _yaml_of(config: BertConfig) -> str:
    """The model YAML as save_bert_config writes it."""
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(content, encoding="utf-8")
    os.replace(partial, path)

