"""Record datasets (pretraining and task records) from TFRecord (schema json optional) or MindRecord, sharded by
rank.

Record files are checked before training starts (columns, schema, token ids within the vocab), so bad data
fails in one line that names the file, instead of deep inside the pipeline.
"""
from __future__ import annotations

import json
from pathlib import Path

import mindspore as ms
import mindspore.dataset as ds
from mindspore.dataset.transforms import TypeCast

from src.records import read_first_tfrecord

PRETRAIN_COLUMNS = ("input_ids", "input_mask", "segment_ids", "next_sentence_labels", "masked_lm_positions",
                    "masked_lm_ids", "masked_lm_weights")
PRETRAIN_FLOAT_COLUMNS = ("masked_lm_weights",)
TASK_COLUMNS = ("input_ids", "input_mask", "segment_ids", "label_ids")
SQUAD_TRAIN_COLUMNS = ("input_ids", "input_mask", "segment_ids", "start_positions", "end_positions")


def find_record_files(data_dir: str | Path, dataset_format: str = "tfrecord") -> list[Path]:
    """A record file as given, or the record files under data_dir: names containing "tfrecord" (Google's too),
    or ending in .mindrecord."""
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
    return files


def check_tfrecords(files: list[Path], schema_file: str | Path | None, columns: tuple[str, ...],
                    vocab_size: int | None = None) -> dict:
    """Compare the first record of every file with the expected columns, the schema and the vocab size."""
    first = None
    for path in files:
        record = read_first_tfrecord(path)
        missing = [c for c in columns if c not in record]
        if missing:
            raise ValueError(f"record file {path} lacks column(s) {', '.join(missing)}: these are not records "
                             f"for this task; re-create them with the matching tools/ script")
        if vocab_size is not None and "input_ids" in record and int(record["input_ids"].max()) >= vocab_size:
            raise ValueError(f"record file {path} holds token id {int(record['input_ids'].max())} but the model's "
                             f"vocab_size is {vocab_size}: the records were made with a larger vocab; use a config "
                             f"whose vocab_size matches the vocab.txt of the records")
        first = first or record
    if schema_file:
        schema_file = Path(schema_file)
        if not schema_file.is_file():
            raise FileNotFoundError(f"schema file {schema_file} does not exist: pass the schema.json written "
                                    f"beside the records, or no --schema_dir")
        try:
            schema_columns = json.loads(schema_file.read_text())["columns"]
        except (ValueError, KeyError):
            raise ValueError(f"schema file {schema_file} is not a TFRecord schema json with a \"columns\" "
                             f"mapping") from None
        for name in columns:
            expected = schema_columns.get(name, {}).get("shape")
            if expected != [int(first[name].size)]:
                raise ValueError(f"schema file {schema_file} gives column {name} shape {expected} but the records "
                                 f"in {files[0].parent} have [{first[name].size}]: pass the schema.json written "
                                 f"with these records")
    return first


def create_record_dataset(data_dir: str | Path, batch_size: int, schema_file: str | Path | None = None,
                          dataset_format: str = "tfrecord", do_shuffle: bool = True, device_num: int = 1,
                          rank: int = 0, epochs: int = 1, skip_batches: int = 0, vocab_size: int | None = None,
                          shuffle_buffer: int = 10000, columns: tuple[str, ...] = PRETRAIN_COLUMNS,
                          float_columns: tuple[str, ...] = PRETRAIN_FLOAT_COLUMNS,
                          drop_remainder: bool = True) -> tuple[ds.Dataset, int]:
    """Batches of the record columns (int32 except float_columns), epochs repeated, first batches skipped;
    and the number of batches in one epoch. data_dir may also be one record file.

    Shuffling uses MindSpore's dataset seed (mindspore.dataset.config.set_seed), so a resumed run that skips
    the batches it already consumed sees the same batches as an uninterrupted run.
    """
    files = [str(f) for f in find_record_files(data_dir, dataset_format)]
    if dataset_format == "mindrecord":
        dataset = ds.MindDataset(files, columns_list=list(columns), shuffle=False, num_shards=device_num,
                                 shard_id=rank)
    else:
        check_tfrecords([Path(f) for f in files], schema_file, columns, vocab_size)
        dataset = ds.TFRecordDataset(files, str(schema_file) if schema_file else None, columns_list=list(columns),
                                     shuffle=False, num_shards=device_num, shard_id=rank, shard_equal_rows=True)
    for column in columns:
        dataset = dataset.map(TypeCast(ms.float32 if column in float_columns else ms.int32), input_columns=column)
    if do_shuffle:
        dataset = dataset.shuffle(shuffle_buffer)
    dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    batches_per_epoch = dataset.get_dataset_size()
    if batches_per_epoch == 0:
        raise ValueError(f"data_dir {data_dir} holds fewer records than one batch of {batch_size} per device: "
                         f"lower batch_size or add data")
    if epochs > 1:
        dataset = dataset.repeat(epochs)
    if skip_batches:
        dataset = dataset.skip(skip_batches)
    return dataset, batches_per_epoch


def largest_label(path: str | Path, dataset_format: str = "tfrecord") -> int:
    """The largest label id in task records (read in full: task files are small)."""
    files = [str(f) for f in find_record_files(path, dataset_format)]
    if dataset_format == "mindrecord":
        dataset = ds.MindDataset(files, columns_list=["label_ids"], shuffle=False)
    else:
        dataset = ds.TFRecordDataset(files, columns_list=["label_ids"], shuffle=False)
    return int(max(row[0].max() for row in dataset.create_tuple_iterator(num_epochs=1, output_numpy=True)))
