"""Does the train step ever wait for data? Records/s the pretraining dataset delivers against what the train step
consumes, at each shape, in one process.

    python bench/input_pipeline.py [--shapes tiny,4x256,base --batch 16 --seq 128 --workers 1,2]

Records are made from the shipped English Wikipedia sample (wikiextractor -> vocab -> tools/create_pretraining_data.py,
seq --seq) as TFRecord and MindRecord. The dataset is src/data/datasets.record_batches as run_pretrain.py builds it
(every column cast, shuffled with the default buffer, batched, repeated); its rate is batches drawn from the iterator
per second times the batch size, with MindSpore's dataset worker count set to each of --workers. The step is
bench/pretrain_step_vs_torch.py's (this project's train cell, Lamb, loss scale, clip), timed on one batch of the same
records. Printed: each rate and the ratio delivered / consumed (the target is at least 5).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent

SHAPES = {"tiny": (2, 128), "4x256": (4, 256), "base": (12, 768)}  # layers, hidden


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", default="tiny,4x256,base")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--workers", default="1,2", help="MindSpore dataset workers to try")
    parser.add_argument("--batches", type=int, default=200, help="batches drawn per dataset measurement")
    parser.add_argument("--steps", type=int, default=5, help="train steps timed per shape (after 3 warm-up)")
    return parser.parse_args()


def make_records(directory: Path, seq: int) -> tuple[Path, Path, int]:
    from src.data.tokenization import train_vocab
    from tools import create_pretraining_data, wiki_to_text
    wiki_to_text.main(["--input", str(ROOT / "data" / "enwiki-sample-pages-articles.xml.bz2"),
                       "--output_dir", str(directory / "text")])
    texts = sorted((directory / "text").glob("*.txt"))
    vocab = train_vocab(texts, directory / "vocab", vocab_size=8000)
    common = ["--input_file", ",".join(map(str, texts)), "--vocab_file", str(vocab), "--max_seq_length", str(seq),
              "--max_predictions_per_seq", "20", "--dupe_factor", "2", "--processes", "2"]
    create_pretraining_data.main([*common, "--output_dir", str(directory / "tfrecord")])
    create_pretraining_data.main([*common, "--output_dir", str(directory / "mindrecord"), "--dataset_format",
                                  "mindrecord"])
    return directory / "tfrecord", directory / "mindrecord", sum(1 for _ in open(vocab, encoding="utf-8"))


def delivered(records: Path, dataset_format: str, batch: int, batches: int) -> float:
    """Records per second out of the dataset iterator, after its first batch (pipeline start-up)."""
    from src.data.datasets import RecordSource, record_batches
    dataset = record_batches(RecordSource(records, dataset_format), batch_size=batch, shuffle=True).epochs(100)
    iterator = dataset.create_tuple_iterator(num_epochs=1)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch / (time.perf_counter() - start)


def consumed(records: Path, layers: int, hidden: int, args: argparse.Namespace, vocab: int) -> float:
    """Records per second the train step takes at this shape (batch x steps/s)."""
    from bench import pretrain_step_vs_torch as step_bench
    from src.data.records import iter_tfrecord
    rows = []
    for path in sorted(records.glob("*.tfrecord")):
        for row in iter_tfrecord(path):
            rows.append(row)
            if len(rows) == args.batch:
                break
        if len(rows) == args.batch:
            break
    batch = {name: np.stack([row[name] for row in rows]) for name in step_bench.COLUMNS}
    shape = argparse.Namespace(layers=layers, hidden=hidden, seq=args.seq, batch=args.batch, vocab=vocab,
                               predictions=batch["masked_lm_positions"].shape[1], optimizer="Lamb")
    step = step_bench.ours_step(shape, batch)
    for _ in range(3):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        step()
    return args.steps * args.batch / (time.perf_counter() - start)


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # the vocab is trained here before the tool forks
    import mindspore as ms
    import mindspore.dataset as ds
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    with tempfile.TemporaryDirectory() as scratch:
        tfrecord, mindrecord, vocab = make_records(Path(scratch), args.seq)
        supply = {}
        for workers in (int(w) for w in args.workers.split(",")):
            ds.config.set_num_parallel_workers(workers)
            for name, records in (("tfrecord", tfrecord), ("mindrecord", mindrecord)):
                supply[name, workers] = statistics.median(
                    delivered(records, name, args.batch, args.batches) for _ in range(3))
        demand = {shape: consumed(tfrecord, *SHAPES[shape], args, vocab) for shape in args.shapes.split(",")}
    print(f"seq {args.seq}, batch {args.batch}, vocab {vocab}; dataset: shuffled, cast, batched; CPU, "
          f"{ms.__version__}")
    for (name, workers), rate in supply.items():
        print(f"  dataset {name:10s} {workers} worker(s): {rate:9.0f} records/s")
    for shape, rate in demand.items():
        slowest = min(supply.values())
        print(f"  train step {shape:6s}: {rate:7.1f} records/s consumed; the slowest dataset setting delivers "
              f"{slowest / rate:7.1f}x that")


if __name__ == "__main__":
    main()
