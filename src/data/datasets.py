"""Record datasets (pretraining and task records) from TFRecord (schema json optional) or MindRecord, sharded by
rank.

Record files are checked before training starts (columns, schema, token ids within the vocab), so bad data
fails in one line that names the file, instead of deep inside the pipeline.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import mindspore as ms
import mindspore.dataset as ds
from mindspore.dataset.transforms import TypeCast

from src.config import BertConfig
from src.data.records import iter_tfrecord
from src.files.staging import MANIFEST, read_manifest

PRETRAIN_COLUMNS = ("input_ids", "input_mask", "segment_ids", "next_sentence_labels", "masked_lm_positions",
                    "masked_lm_ids", "masked_lm_weights")
PRETRAIN_FLOAT_COLUMNS = ("masked_lm_weights",)
TASK_COLUMNS = ("input_ids", "input_mask", "segment_ids", "label_ids")
SQUAD_TRAIN_COLUMNS = ("input_ids", "input_mask", "segment_ids", "start_positions", "end_positions")


SCAN_BYTES = 1 << 30  # record files are scanned in full up to this total size, then only their first record
OUR_SHARD = re.compile(r"^part-\d{5}\.(tfrecord|mindrecord)$")


def find_record_files(data_dir: str | Path, dataset_format: str = "tfrecord") -> list[Path]:
    """A record file as given, or the record files under data_dir: names containing "tfrecord" (Google's too),
    or ending in .mindrecord. A directory with a manifest (tools/create_pretraining_data.py) must match it."""
    data_dir = Path(data_dir)
    if data_dir.is_file():
        return [data_dir]
    if not data_dir.is_dir():
        raise FileNotFoundError(f"data_dir {data_dir} does not exist: pass the directory of pretraining records "
                                f"made by tools/create_pretraining_data.py")
    if dataset_format == "mindrecord":
        files = sorted(p for p in data_dir.iterdir() if p.suffix == ".mindrecord")
    else:
        files = sorted(p for p in data_dir.iterdir() if "tfrecord" in p.name and not p.name.startswith("."))
    if not files:
        raise FileNotFoundError(f"data_dir {data_dir} holds no {dataset_format} files: make them with "
                                f"tools/create_pretraining_data.py --dataset_format {dataset_format}")
    if read_manifest(data_dir) is None and any(OUR_SHARD.match(p.name) for p in files):
        raise ValueError(f"data_dir {data_dir} holds shards of tools/create_pretraining_data.py but no {MANIFEST}: "
                         f"the run that made them did not finish; re-create the directory")
    return files


def _check_row(row: dict, first: dict, where: str, columns: tuple[str, ...], model: BertConfig | None) -> None:
    """One record's columns against the first record's shapes and the model's vocab and positions."""
    for name in columns:
        if name not in row:
            raise ValueError(f"{where} lacks column {name}: these are not records for this task; re-create them "
                             f"with the matching tools/ script")
        if row[name].size != first[name].size:
            raise ValueError(f"{where} has {name} of length {row[name].size} but the first record "
                             f"{first[name].size}: records of different settings are mixed; keep one kind per "
                             f"directory")
    if "masked_lm_positions" in columns and row["masked_lm_positions"].size == 0:
        raise ValueError(f"{where} has no masked positions (made with --max_predictions_per_seq 0): re-create the "
                         f"records with --max_predictions_per_seq of at least 1")
    seq_length = row["input_ids"].size
    if "masked_lm_positions" in columns and row["masked_lm_positions"].size and \
            not 0 <= row["masked_lm_positions"].min() <= row["masked_lm_positions"].max() < seq_length:
        raise ValueError(f"{where} has a masked position outside its {seq_length} tokens: the record is corrupt; "
                         f"re-create the records")
    if model is None:
        return
    if seq_length > model.max_position_embeddings:
        raise ValueError(f"{where} holds {seq_length} tokens but the model's max_position_embeddings is "
                         f"{model.max_position_embeddings}: re-create the records with --max_seq_length "
                         f"{model.max_position_embeddings} or less, or pick a larger model")
    ids = row["input_ids"]
    if ids.size and (ids.min() < 0 or ids.max() >= model.vocab_size):
        raise ValueError(f"{where} holds token id {int(ids.max() if ids.max() >= model.vocab_size else ids.min())} "
                         f"but the model's vocab_size is {model.vocab_size}: the records were made with another "
                         f"vocab; use the model config (--bert_network) whose vocab_size matches their vocab.txt")
    segments = row.get("segment_ids")
    if segments is not None and segments.size and not 0 <= segments.min() <= segments.max() < model.type_vocab_size:
        raise ValueError(f"{where} has segment id {int(segments.max())} but the model's type_vocab_size is "
                         f"{model.type_vocab_size}: the record is corrupt or made for another model")


def check_tfrecords(files: list[Path], schema_file: str | Path | None, columns: tuple[str, ...],
                    model: BertConfig | None = None, scan: bool = False) -> dict:
    """Check the records against the expected columns, the schema and the model; returns the first record.

    scan: read every record (framing, both checksums, shapes, ids) up to SCAN_BYTES in all, so a corrupt record
    or an out-of-range id fails here in one line instead of deep inside the pipeline hours later; without it,
    and past the budget, the first record of each file is checked."""
    first = None
    budget = SCAN_BYTES if scan else 0
    for path in files:
        size = path.stat().st_size
        rows = iter_tfrecord(path)
        if size <= budget:
            budget -= size
        else:
            rows = islice(rows, 1)
        for number, row in enumerate(rows, 1):
            first = first or row
            _check_row(row, first, f"record file {path}, record {number}", columns, model)
    if scan and budget == 0 and len(files) > 1:
        print(f"note: the records are larger than {SCAN_BYTES >> 20} MiB: the first of each file was checked, the "
              f"rest are checked as training reads them", flush=True)
    if schema_file:
        schema_file = Path(schema_file)
        if not schema_file.is_file():
            raise FileNotFoundError(f"schema file {schema_file} does not exist: pass the schema.json written "
                                    f"beside the records, or no --schema_dir")
        try:
            schema_columns = json.loads(schema_file.read_text())["columns"]
        except (ValueError, KeyError, TypeError):
            raise ValueError(f"schema file {schema_file} is not a TFRecord schema json with a \"columns\" "
                             f"mapping") from None
        for name in columns:
            expected = schema_columns.get(name, {}).get("shape") if isinstance(schema_columns, dict) else None
            if expected != [int(first[name].size)]:
                raise ValueError(f"schema file {schema_file} gives column {name} shape {expected} but the records "
                                 f"in {files[0].parent} have [{first[name].size}]: pass the schema.json written "
                                 f"with these records")
    return first


@dataclass(frozen=True)
class RecordSource:
    """Record files and the columns a run reads from them. path: a directory of record files, or one file."""

    path: str | Path
    dataset_format: str = "tfrecord"
    schema_file: str | Path | None = None
    columns: tuple[str, ...] = PRETRAIN_COLUMNS
    float_columns: tuple[str, ...] = PRETRAIN_FLOAT_COLUMNS  # read as float32; the others as int32


def check_records(source: RecordSource, model: BertConfig | None = None) -> list[Path]:
    """The source's record files, checked before anything reads them for training (check_tfrecords; with a
    model, every record up to SCAN_BYTES). MindRecord files are checked by MindSpore as it opens them."""
    files = find_record_files(source.path, source.dataset_format)
    if source.dataset_format != "mindrecord":
        if check_tfrecords(files, source.schema_file, source.columns, model, scan=model is not None) is None:
            raise ValueError(f"data {source.path} holds no records: re-create it")
    return files


@dataclass
class Batches:
    """One epoch of batches, and how many there are; epochs() extends it for a (resumed) run."""

    dataset: ds.Dataset
    per_epoch: int

    def epochs(self, epochs: int, skip_batches: int = 0) -> ds.Dataset:
        """The batches of `epochs` epochs, the first skip_batches left out (those a resumed run has consumed)."""
        dataset = self.dataset.repeat(epochs) if epochs > 1 else self.dataset
        return dataset.skip(skip_batches) if skip_batches else dataset


def record_batches(source: RecordSource, *, batch_size: int, shuffle: bool = False, shuffle_buffer: int = 10000,
                   device_num: int = 1, rank: int = 0, drop_remainder: bool = True) -> Batches:
    """Batches of the source's columns for this rank's shard (check the files first: check_records).

    Shuffling uses MindSpore's dataset seed (mindspore.dataset.config.set_seed), so a resumed run that skips
    the batches it already consumed sees the same batches as an uninterrupted run.
    """
    files = [str(f) for f in find_record_files(source.path, source.dataset_format)]
    columns = list(source.columns)
    if source.dataset_format == "mindrecord":
        dataset = ds.MindDataset(files, columns_list=columns, shuffle=False, num_shards=device_num, shard_id=rank)
    else:
        schema = str(source.schema_file) if source.schema_file else None
        dataset = ds.TFRecordDataset(files, schema, columns_list=columns, shuffle=False, num_shards=device_num,
                                     shard_id=rank, shard_equal_rows=True)
    for column in columns:
        dataset = dataset.map(TypeCast(ms.float32 if column in source.float_columns else ms.int32),
                              input_columns=column)
    if shuffle:
        dataset = dataset.shuffle(shuffle_buffer)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    per_epoch = dataset.get_dataset_size()
    if per_epoch == 0:
        raise ValueError(f"data {source.path} holds fewer records than one batch of {batch_size} per device: "
                         f"lower batch_size or add data")
    return Batches(dataset, per_epoch)


def _column(path: str | Path, dataset_format: str, column: str) -> ds.Dataset:
    files = [str(f) for f in find_record_files(path, dataset_format)]
    if dataset_format == "mindrecord":
        return ds.MindDataset(files, columns_list=[column], shuffle=False)
    return ds.TFRecordDataset(files, columns_list=[column], shuffle=False)


def largest_label(path: str | Path, dataset_format: str = "tfrecord") -> int:
    """The largest label id in task records (read in full: task files are small)."""
    rows = _column(path, dataset_format, "label_ids").create_tuple_iterator(num_epochs=1, output_numpy=True)
    return int(max(row[0].max() for row in rows))


def record_seq_length(path: str | Path, dataset_format: str = "tfrecord") -> int:
    """The sequence length of task records (their input_ids column)."""
    rows = _column(path, dataset_format, "input_ids").create_tuple_iterator(num_epochs=1, output_numpy=True)
    return int(next(rows)[0].size)
