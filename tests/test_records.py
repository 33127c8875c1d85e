"""The TFRecord reader's own tf.train.Example decoder against protobuf's parser (the reference)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from tfrecord import example_pb2

from src.data.records import _parse_example, column_rows, framed_columns, iter_tfrecord, write_columns, write_tfrecord


def protobuf_columns(payload: bytes) -> dict[str, np.ndarray]:
    example = example_pb2.Example()
    example.ParseFromString(payload)
    columns = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        columns[name] = np.array(getattr(feature, kind).value, np.float32 if kind == "float_list" else np.int64)
    return columns


def test_decoder_equals_protobuf_on_written_records(tmp_path):
    rng = np.random.default_rng(0)
    rows = [{"input_ids": rng.integers(0, 30000, 64), "masked_lm_weights": rng.random(10).astype(np.float32),
             "label_ids": np.array([-1, 0, 2 ** 40, -(2 ** 62)]), "empty": np.array([], np.int64)} for _ in range(20)]
    path = tmp_path / "rows.tfrecord"
    write_tfrecord(rows, path)
    with open(path, "rb") as handle:
        data = handle.read()
    at, count = 0, 0
    for row in iter_tfrecord(path):
        length = int.from_bytes(data[at:at + 8], "little")
        expected = protobuf_columns(data[at + 12:at + 12 + length])
        at += 12 + length + 4
        assert row.keys() == expected.keys() == rows[count].keys()
        for name in row:
            assert row[name].dtype == expected[name].dtype
            np.testing.assert_array_equal(row[name], expected[name])
            np.testing.assert_array_equal(row[name], rows[count][name])
        count += 1
    assert count == 20


def test_decoder_reads_packed_and_unpacked_lists_as_protobuf_does():
    example = example_pb2.Example()
    example.features.feature["ids"].int64_list.value.extend([3, -5, 7])
    example.features.feature["w"].float_list.value.extend([0.5, -1.25])
    payload = example.SerializeToString()  # packed lists, as protobuf writes them
    for name, values in _parse_example(payload).items():
        np.testing.assert_array_equal(values, protobuf_columns(payload)[name])
    # an unpacked int64 list: field 1, varint wire type, one value at a time
    feature = b"\x1a\x04" + b"\x08\x03\x08\x05"  # Feature.int64_list = Int64List{value: 3, value: 5}
    entry = b"\x0a\x01x" + b"\x12" + bytes([len(feature)]) + feature
    features = b"\x0a" + bytes([len(entry)]) + entry
    payload = b"\x0a" + bytes([len(features)]) + features
    np.testing.assert_array_equal(_parse_example(payload)["x"], protobuf_columns(payload)["x"])


@pytest.mark.parametrize("payload", [b"\x0a\x05\x0a\x03", b"\xff" * 12, b"\x0b\x00", b"\x0a\x02\x12\x00",
                                     b"hello, world"])
def test_decoder_refuses_what_is_not_an_example(payload):
    with pytest.raises(ValueError):
        _parse_example(payload)


def test_column_writer_writes_protobufs_bytes(tmp_path):
    """framed_columns (a column at a time) against protobuf's deterministic serialization of each row, framed by
    write_tfrecord: varints of every byte count, floats of every kind, and the columns it hands to protobuf."""
    rng = np.random.default_rng(1)
    edges = np.array([0, 1, 127, 128, 16383, 16384, 2 ** 21, 2 ** 28 - 1, 2 ** 32, 2 ** 35, 2 ** 49, 2 ** 63 - 1])
    columns = {"input_ids": rng.integers(0, 30000, (50, 128)), "next_sentence_labels": rng.integers(0, 2, (50, 1)),
               "edges": rng.permuted(np.tile(edges, (50, 1)), axis=1), "small": rng.integers(0, 300, (50, 3)),
               "weights": rng.normal(size=(50, 20)).astype(np.float32),
               "specials": np.tile(np.array([0.0, -0.0, np.inf, np.nan, 1e-40], np.float32), (50, 1))}
    for batch in (columns, dict(columns, input_ids=columns["input_ids"] - 1),
                  dict(columns, empty=np.zeros((50, 0), np.int64))):
        write_tfrecord(column_rows(batch), tmp_path / "rows.tfrecord")
        assert b"".join(framed_columns(batch)) == (tmp_path / "rows.tfrecord").read_bytes()


def test_column_writer_writes_the_row_writers_file_in_any_block_size(tmp_path):
    """write_columns (framed a block of rows at a time, CRCs included) against write_tfrecord row by row."""
    rng = np.random.default_rng(2)
    lengths = rng.integers(1, 128, 37)
    columns = {"input_ids": np.where(np.arange(128) < lengths[:, None], rng.integers(0, 30000, (37, 128)), 0),
               "masked_lm_weights": rng.random((37, 20)).astype(np.float32),
               "next_sentence_labels": rng.integers(0, 2, (37, 1))}
    write_tfrecord(column_rows(columns), tmp_path / "rows.tfrecord")
    expected = (tmp_path / "rows.tfrecord").read_bytes()
    assert write_columns(columns, tmp_path / "columns.tfrecord", "tfrecord") == 37
    assert (tmp_path / "columns.tfrecord").read_bytes() == expected
    for block_rows in (1, 5, 36, 37, 100):
        assert b"".join(framed_columns(columns, block_rows)) == expected
    assert len(list(iter_tfrecord(tmp_path / "columns.tfrecord"))) == 37  # the reader checks every CRC


def test_record_module_does_not_import_torch():
    """The tfrecord package's __init__ imports torch when it is installed (1.4 s of start-up in every data
    preparation and training run); src.data.records loads only its protobuf module."""
    import subprocess
    import sys
    probe = "import sys; import src.data.records; assert 'torch' not in sys.modules, 'src.data.records imported torch'"
    subprocess.run([sys.executable, "-c", probe], check=True, cwd=Path(__file__).resolve().parent.parent)
