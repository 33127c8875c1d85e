"""Record files: TFRecord (tf.train.Example, readable by TensorFlow and by MindSpore's TFRecordDataset) with the
schema json the model zoo uses, or MindRecord. Shared by pretraining and task data.

TFRecords are tf.train.Example protos (the `tfrecord` package's copy, no TensorFlow needed), serialized
deterministically (features sorted by name: protobuf's default map order changes from process to process, so the
same records came out as different bytes), in TFRecord framing; MindRecord with mindspore.mindrecord.
"""
from __future__ import annotations

import importlib.util
import json
import os
import struct
import sys
from pathlib import Path
from typing import Iterable, Iterator, Mapping

import crc32c
import numpy as np


def _import_example_pb2():
    """The `tfrecord` package's tf.train.Example module, without the package's __init__: that imports torch
    whenever torch is installed, a slow start for every data tool (docs/cpu_workarounds.md)."""
    if "tfrecord.example_pb2" in sys.modules:
        return sys.modules["tfrecord.example_pb2"]
    package = importlib.util.find_spec("tfrecord")  # locates the package without running its __init__
    spec = importlib.util.spec_from_file_location(
        "tfrecord.example_pb2", Path(package.submodule_search_locations[0]) / "example_pb2.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a later `import tfrecord` reuses it instead of registering the protos twice
    spec.loader.exec_module(module)
    return module


example_pb2 = _import_example_pb2()
Features = Mapping[str, np.ndarray]
RECORD_SUFFIX = {"tfrecord": ".tfrecord", "mindrecord": ".mindrecord"}


def _schema_type(array: np.ndarray) -> str:
    return "float32" if array.dtype.kind == "f" else "int64"


def serialize_example(row: Features) -> bytes:
    """A tf.train.Example of int64 / float lists, the same bytes for the same row in every process."""
    example = example_pb2.Example()
    for name, value in row.items():
        feature = example.features.feature[name]
        (feature.float_list if value.dtype.kind == "f" else feature.int64_list).value.extend(value.reshape(-1).tolist())
    return example.SerializeToString(deterministic=True)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _packed_varints(column: np.ndarray) -> tuple[bytes, np.ndarray]:
    """The varints of a [rows, n] non-negative integer column laid end to end, and each row's byte count.

    Each value's bytes are looked up in a table of every varint up to the column's largest value (token ids,
    positions and flags make small tables) and scattered to their offsets, one byte position at a time: a third
    of the time of computing the bytes and compressing a [values, width] array."""
    values = column.reshape(-1)
    largest = int(values.max())
    if largest < 0x80:  # one byte each: flags, labels, segment ids
        return values.astype(np.uint8).tobytes(), np.full(len(column), column.shape[1])
    if largest < _VARINT_TABLE_LIMIT:
        byte_tables, lookup = _varint_bytes(np.arange(largest + 1)), values
    else:  # a table of the values themselves
        byte_tables, lookup = _varint_bytes(values), np.arange(len(values))
    size_table = sum((table >= 0x80 for table in byte_tables), np.ones(len(byte_tables[0]), np.uint8))
    sizes = size_table[lookup]
    ends = np.cumsum(sizes, dtype=np.int64)
    starts = ends - sizes
    data = np.empty(int(ends[-1]), np.uint8)
    data[starts] = byte_tables[0][lookup]  # every varint has a first byte
    for byte, table in enumerate(byte_tables[1:], 1):
        present = sizes > byte
        data[starts[present] + byte] = table[lookup[present]]
    return data.tobytes(), np.diff(ends.reshape(column.shape)[:, -1], prepend=0)


_VARINT_TABLE_LIMIT = 1 << 20  # columns whose values stay below it use a lookup table (at most 3 MiB)


def _varint_bytes(values: np.ndarray) -> list[np.ndarray]:
    """Byte k of each non-negative value's varint (meaningful where the varint has more than k bytes), k = 0, 1,
    ...: 7 bits a byte, the top bit set when more bytes follow."""
    values = values.astype(np.int64)
    width = max(1, -(-int(values.max(initial=0)).bit_length() // 7))
    return [(((values >> 7 * byte) & 0x7F) | ((values >> 7 * (byte + 1) > 0) << 7)).astype(np.uint8)
            for byte in range(width)]


def framed_columns(columns: Mapping[str, np.ndarray], block_rows: int = 4096) -> Iterator[bytes]:
    """The TFRecord file of the rows of [rows, n] columns (framing, serialize_example's bytes, CRCs), in blocks.

    Row by row, protobuf's serialization and then a Python loop over features were a quarter of pretraining data
    preparation with --random_draws numpy. Here every record is the same sequence of pieces -- the frame and
    Example header (by payload length), then each feature's header (by data length) and its data, then the CRC --
    so each column's bytes are computed once (packed varints or float32), and a block's records are one gather
    from a buffer holding them. Negative integers or empty columns go through protobuf.
    """
    names = sorted(columns)
    rows = len(columns[names[0]]) if names else 0
    if not rows:
        return
    if any(columns[n].shape[1] == 0 or (columns[n].dtype.kind != "f" and columns[n].min() < 0) for n in names):
        for first in range(0, rows, block_rows):
            block = {name: values[first:first + block_rows] for name, values in columns.items()}
            yield b"".join(_frame(serialize_example(row)) for row in column_rows(block))
        return
    sources, piece_starts, piece_lengths, base = [], [], [], 0  # the buffer's parts; each row's pieces
    feature_bytes = np.zeros(rows, np.int64)
    for name in names:
        column = columns[name]
        if column.dtype.kind == "f":
            data, lengths, list_tag = column.astype("<f4").tobytes(), np.full(rows, 4 * column.shape[1]), 0x12
        else:
            (data, lengths), list_tag = _packed_varints(column), 0x1A  # Feature.float_list = 2, int64_list = 3
        key = b"\x0a" + _encode_varint(len(name.encode())) + name.encode()
        headers = []
        distinct, which = np.unique(lengths, return_inverse=True)
        for length in distinct.tolist():
            values = b"\x0a" + _encode_varint(length)  # FloatList / Int64List.value = 1, packed
            feature = bytes([list_tag]) + _encode_varint(len(values) + length) + values
            entry = key + b"\x12" + _encode_varint(len(feature) + length) + feature  # map entry: key 1, value 2
            headers.append(b"\x0a" + _encode_varint(len(entry) + length) + entry)  # Features.feature = 1
        header_bytes, header_starts = _table(headers)
        sources += [header_bytes, data]
        piece_starts += [base + header_starts[which], base + len(header_bytes) + np.cumsum(lengths) - lengths]
        piece_lengths += [header_starts[which + 1] - header_starts[which], lengths]
        base += len(header_bytes) + len(data)
        feature_bytes += piece_lengths[-2] + lengths
    distinct, which = np.unique(feature_bytes, return_inverse=True)
    prefixes = []  # TFRecord length and its CRC, then Example.features = 1 and its length
    for length in distinct.tolist():
        example_header = b"\x0a" + _encode_varint(length)
        prefixes.append(_frame_header(len(example_header) + length) + example_header)
    prefix_bytes, prefix_starts = _table(prefixes)
    sources += [prefix_bytes, bytes(4)]  # then 4 bytes for each record's CRC, written after the gather
    starts = np.stack([base + prefix_starts[which], *piece_starts, np.full(rows, base + len(prefix_bytes))], axis=1)
    lengths = np.stack([prefix_starts[which + 1] - prefix_starts[which], *piece_lengths, np.full(rows, 4)], axis=1)
    buffer = np.frombuffer(b"".join(sources), np.uint8)
    for first in range(0, rows, block_rows):
        block_starts, block_lengths = starts[first:first + block_rows], lengths[first:first + block_rows]
        ends = np.cumsum(block_lengths.reshape(-1))
        offsets = np.repeat(block_starts.reshape(-1) - (ends - block_lengths.reshape(-1)), block_lengths.reshape(-1))
        block = buffer[offsets + np.arange(len(offsets))]
        record_ends = ends[len(names) * 2 + 1::len(names) * 2 + 2]  # after each record's CRC
        record_starts = np.concatenate([[0], record_ends[:-1]])
        view = memoryview(block)
        crcs = np.array([_masked_crc(view[start + 12:end - 4]) for start, end in
                         zip(record_starts.tolist(), record_ends.tolist())], "<u4")
        block[(record_ends - 4)[:, None] + np.arange(4)] = crcs.view(np.uint8).reshape(-1, 4)
        yield block.tobytes()


def _table(pieces: list[bytes]) -> tuple[bytes, np.ndarray]:
    """Byte strings laid end to end, and where each starts (one more entry: the end)."""
    return b"".join(pieces), np.cumsum([0, *map(len, pieces)])


def _frame_header(length: int) -> bytes:
    """TFRecord's record header: the payload length and its masked CRC."""
    packed = struct.pack("<Q", length)
    return packed + struct.pack("<I", _masked_crc(packed))


def _frame(data: bytes) -> bytes:
    return b"".join((_frame_header(len(data)), data, struct.pack("<I", _masked_crc(data))))


def column_rows(columns: Mapping[str, np.ndarray]) -> list[dict[str, np.ndarray]]:
    return [dict(zip(columns, values)) for values in zip(*columns.values())]


def _write_framed(blocks: Iterable[bytes], path: str | Path) -> None:
    """TFRecord bytes (framed records) into path, atomically."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with open(partial, "wb") as handle:
            for block in blocks:
                handle.write(block)
        os.replace(partial, path)
    finally:
        if partial.exists():
            partial.unlink()


def write_tfrecord(rows: Iterable[Features], path: str | Path) -> int:
    """Write rows as tf.train.Example records (int64 / float lists); atomic; returns the row count."""
    count = 0

    def framed() -> Iterator[bytes]:
        nonlocal count
        for row in rows:
            count += 1
            yield _frame(serialize_example(row))
    _write_framed(framed(), path)
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


def write_columns(columns: Mapping[str, np.ndarray], path: str | Path, dataset_format: str) -> int:
    """write_records of the rows of [rows, n] columns; TFRecords serialized a column at a time."""
    if dataset_format == "tfrecord":
        _write_framed(framed_columns(columns), path)
        return len(next(iter(columns.values()))) if columns else 0
    as_stored = {name: values.astype(np.float32 if values.dtype.kind == "f" else np.int64)
                 for name, values in columns.items()}
    return write_records(column_rows(as_stored), path, dataset_format)


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


# tf.train.Example read straight from the protobuf wire format: MindSpore's import selects the pure-Python
# protobuf backend, too slow a parser to check every record before training (docs/cpu_workarounds.md).
# Example{features=1} > Features{map feature=1} > entry{key=1, value=2} > Feature{bytes_list=1 | float_list=2 |
# int64_list=3} > list{value=1, packed or not}. tests/test_records.py compares it with protobuf's parser.
_KINDS = {1: "bytes_list", 2: "float_list", 3: "int64_list"}


def _varint(data: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, at
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of a message: an int for varints, bytes for the other types."""
    at, end = 0, len(data)
    while at < end:
        key, at = _varint(data, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(data, at)
        elif wire == 2:
            length, at = _varint(data, at)
            value, at = data[at:at + length], at + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = data[at:at + size], at + size
        else:
            raise ValueError(f"wire type {wire}")
        if at > end or number == 0:
            raise ValueError("field runs past the message")
        yield number, wire, value


def _list_values(kind: str, data: bytes) -> np.ndarray:
    values: list = []
    for number, wire, value in _fields(data):
        if number != 1:
            continue
        if kind == "float_list":
            values.extend(struct.unpack(f"<{len(value) // 4}f", value) if wire == 2 else struct.unpack("<f", value))
        elif kind == "int64_list" and wire == 2:
            at = 0
            while at < len(value):
                number_value, at = _varint(value, at)
                values.append(number_value - (1 << 64) if number_value >= 1 << 63 else number_value)
        elif kind == "int64_list":
            values.append(value - (1 << 64) if value >= 1 << 63 else value)
        else:
            values.append(value)
    if kind == "bytes_list":
        return np.array(values, object)
    return np.array(values, np.float32 if kind == "float_list" else np.int64)


def _parse_example(payload: bytes) -> dict[str, np.ndarray]:
    columns = {}
    for number, wire, features in _fields(payload):
        if number != 1 or wire != 2:
            raise ValueError("not an Example")
        for entry_number, entry_wire, entry in _fields(features):
            if entry_number != 1 or entry_wire != 2:
                raise ValueError("not a Features map")
            name, feature = None, b""
            for field, field_wire, value in _fields(entry):
                if field == 1 and field_wire == 2:
                    name = value.decode("utf-8")
                elif field == 2 and field_wire == 2:
                    feature = value
            kinds = [(_KINDS[field], value) for field, field_wire, value in _fields(feature)
                     if field in _KINDS and field_wire == 2]
            if name is None or not kinds:
                raise ValueError("feature without name or values")
            columns[name] = _list_values(*kinds[-1])
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
