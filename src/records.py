"""Record files: TFRecord (tf.train.Example, readable by TensorFlow and by MindSpore's TFRecordDataset) with the
schema json the model zoo uses, or MindRecord. Shared by pretraining and task data.

TFRecords are written with the `tfrecord` package (no TensorFlow needed); MindRecord with mindspore.mindrecord.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import crc32c
import numpy as np
from tfrecord import example_pb2
from tfrecord.writer import TFRecordWriter

Features = Mapping[str, np.ndarray]
RECORD_SUFFIX = {"tfrecord": ".tfrecord", "mindrecord": ".mindrecord"}


def _schema_type(array: np.ndarray) -> str:
    return "float32" if array.dtype.kind == "f" else "int64"


def write_tfrecord(rows: Iterable[Features], path: str | Path) -> int:
    """Write rows as tf.train.Example records (int64 / float lists); atomic; returns the row count."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    count = 0
    writer = TFRecordWriter(str(partial))
    try:
        for row in rows:
            writer.write({name: (value.reshape(-1).tolist(), "float" if value.dtype.kind == "f" else "int")
                          for name, value in row.items()})
            count += 1
        writer.close()
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()
    return count


def write_mindrecord(rows: Iterable[Features], path: str | Path) -> int:
    from mindspore.mindrecord import FileWriter

    rows = list(rows)
    path = Path(path)
    for stale in (path, Path(f"{path}.db")):
        if stale.exists():
            stale.unlink()
    writer = FileWriter(str(path), shard_num=1, overwrite=True)
    if rows:
        writer.add_schema({name: {"type": _schema_type(value), "shape": [-1]} for name, value in rows[0].items()},
                          "bert")
        writer.write_raw_data([{name: value.reshape(-1) for name, value in row.items()} for row in rows])
    writer.commit()
    return len(rows)


def write_records(rows: Iterable[Features], path: str | Path, dataset_format: str) -> int:
    if dataset_format == "tfrecord":
        return write_tfrecord(rows, path)
    if dataset_format == "mindrecord":
        return write_mindrecord(rows, path)
    raise ValueError(f"unknown dataset format '{dataset_format}': use tfrecord or mindrecord")


def schema_json(example: Features, num_rows: int) -> dict:
    """The schema json of the model zoo's README: column type, rank and shape, and the row count."""
    return {"datasetType": "TF", "numRows": num_rows,
            "columns": {name: {"type": _schema_type(value), "rank": 1, "shape": [int(value.size)]}
                        for name, value in example.items()}}


def write_schema(example: Features, num_rows: int, path: str | Path) -> Path:
    path = Path(path)
    path.write_text(json.dumps(schema_json(example, num_rows), indent=2), encoding="utf-8")
    return path


def _masked_crc(data: bytes) -> int:
    """TFRecord's masked CRC-32C of data."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _parse_example(payload: bytes) -> dict[str, np.ndarray]:
    example = example_pb2.Example()
    example.ParseFromString(payload)
    columns = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value
        columns[name] = np.array(values, np.float32 if kind == "float_list" else np.int64)
    return columns


def iter_tfrecord(path: str | Path) -> Iterator[dict[str, np.ndarray]]:
    """The records of a TFRecord file as columns, checking each record's framing and both CRCs as TensorFlow
    writes them; a cut or corrupt record raises one line naming the file and the record's number."""
    path = Path(path)
    fix = "re-create or re-copy the file (tools/create_pretraining_data.py, tools/convert_task_data.py)"
    with open(path, "rb") as handle:
        number = 0
        while header := handle.read(12):
            number += 1
            where = f"record file {path}, record {number}"
            if len(header) < 12:
                raise ValueError(f"{where} is cut short (the file ends inside a record header): {fix}")
            length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
            if _masked_crc(length_bytes) != length_crc:
                raise ValueError(f"{where}: bad length checksum (not a TFRecord file, or corrupt): {fix}")
            (length,) = struct.unpack("<Q", length_bytes)
            payload, footer = handle.read(length), handle.read(4)
            if len(payload) != length or len(footer) != 4:
                raise ValueError(f"{where} is cut short (the file ends inside the record): {fix}")
            if _masked_crc(payload) != struct.unpack("<I", footer)[0]:
                raise ValueError(f"{where}: bad data checksum (corrupt bytes): {fix}")
            try:
                yield _parse_example(payload)
            except Exception:  # protobuf raises its own DecodeError type
                raise ValueError(f"{where} is not a tf.train.Example: {fix}") from None
        if number == 0:
            raise ValueError(f"record file {path} is empty: {fix}")


def read_first_tfrecord(path: str | Path) -> dict[str, np.ndarray]:
    """Parse the first record of a TFRecord file, raising one line naming the file if it is not one."""
    return next(iter(iter_tfrecord(path)))
