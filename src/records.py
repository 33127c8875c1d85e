"""Record files: TFRecord (tf.train.Example, readable by TensorFlow and by MindSpore's TFRecordDataset) with the
schema json the model zoo uses, or MindRecord. Shared by pretraining and task data.

TFRecords are written with the `tfrecord` package (no TensorFlow needed); MindRecord with mindspore.mindrecord.
"""
from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import Iterable, Mapping

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


def read_first_tfrecord(path: str | Path) -> dict[str, np.ndarray]:
    """Parse the first record of a TFRecord file, raising one line naming the file if it is not one."""
    path = Path(path)
    with open(path, "rb") as handle:
        header = handle.read(12)
        if len(header) < 12:
            raise ValueError(f"record file {path} is empty or truncated: re-create it with "
                             f"tools/create_pretraining_data.py")
        (length,) = struct.unpack("<Q", header[:8])
        payload = handle.read(length)
    if length > 1 << 30 or len(payload) != length:
        raise ValueError(f"record file {path} is corrupt (bad record length): it is not a TFRecord file or was cut "
                         f"short; re-create it with tools/create_pretraining_data.py")
    example = example_pb2.Example()
    try:
        example.ParseFromString(payload)
    except Exception:  # protobuf raises its own DecodeError type
        raise ValueError(f"record file {path} is corrupt (first record is not a tf.train.Example): re-create it "
                         f"with tools/create_pretraining_data.py") from None
    columns = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value
        columns[name] = np.array(values, np.float32 if kind == "float_list" else np.int64)
    return columns
