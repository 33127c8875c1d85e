"""Does pretraining pay off? Finetune from a pretrained checkpoint and from random weights with identical settings
on labeled sets of several sizes and seeds, score both on one held-out test set, and write a table and a plot.

    python tools/compare_starts.py --splits_dir out/splits --vocab_file out/vocab/vocab.txt \
        --bert_network out/vocab/model.yaml --pretrained_checkpoint out/pretrain_ckpt --output_dir out/compare

--splits_dir is the output of tools/split_labeled_text.py (test, train_{size}_seed{seed}, labels.json); its
manifest says the task: classification (label_text, scored by accuracy through run_classifier.py) or NER
(peoples_daily, scored by entity F1 through run_ner.py with a CRF). Each run is that script in this process, with
--seed set to the labeled set's seed: the two starts of one (size, seed) see the same examples in the same
order. Small sets train for more epochs (at least --min_steps optimizer steps), the same for both starts. Writes
compare.json (every run and the summary), compare.png and the table it prints, into --output_dir (all or nothing,
as the data tools write theirs).
"""
from __future__ import annotations

import argparse
import json
import math
import re
import statistics
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt

import run_classifier
import run_ner
from src.cli import ArgumentParser, check_minimums, run_cli
from src.config import load_run_config, str2bool
from src.files.paths import check_apart
from src.files.run_files import latest_checkpoint
from src.files.staging import finish_output, read_manifest, staged_output
from src.train.callbacks import clock
from tools import convert_task_data
from tools.split_labeled_text import EXTENSIONS

STARTS = ("pretrained", "random")
TRAIN_FILE = re.compile(r"train_(\d+)_seed(\d+)\.(tsv|txt)")
TASKS = {"label_text": ("classification", "accuracy"), "peoples_daily": ("ner", "f1")}  # by the split's format


def split_format(splits_dir: Path) -> str:
    """The --input_format tools/split_labeled_text.py recorded in the manifest of splits_dir."""
    manifest = read_manifest(splits_dir) if splits_dir.is_dir() else None
    if manifest is None or manifest.get("tool") != "tools/split_labeled_text.py":
        raise FileNotFoundError(f"{splits_dir} is not an output of tools/split_labeled_text.py (no manifest of "
                                f"it): pass that tool's --output_dir")
    return manifest["settings"].get("input_format", "label_text")


def labeled_sets(splits_dir: Path) -> dict[tuple[int, int], Path]:
    """{(size, seed): path} of the training sets in splits_dir."""
    found = {}
    for path in sorted(splits_dir.glob("train_*_seed*.*")):
        match = TRAIN_FILE.fullmatch(path.name)
        if match:
            found[int(match[1]), int(match[2])] = path
    return dict(sorted(found.items()))


def to_records(source: Path, output: Path, input_format: str, args: argparse.Namespace) -> Path:
    convert_task_data.convert_files(["--task", TASKS[input_format][0], "--input_format", input_format,
                                     "--input_file", str(source), "--output_file", str(output),
                                     "--vocab_file", str(args.vocab_file), "--max_seq_length", str(args.max_seq_length),
                                     "--label2id_file", str(args.splits_dir / "labels.json")])
    return output


def epochs_for(size: int, batch_size: int, min_steps: int, min_epochs: int) -> int:
    return max(min_epochs, math.ceil(min_steps * batch_size / size))


def finetune_once(args: argparse.Namespace, task: str, start: str, train_records: Path, test_records: Path,
                  epochs: int, seed: int, run_dir: Path) -> float:
    """One run_classifier.py / run_ner.py run (train, then score the test records); returns its score."""
    argv = ["--device_target", "CPU", "--do_train", "true", "--do_eval", "true",
            "--train_data_file_path", str(train_records), "--eval_data_file_path", str(test_records),
            "--config", str(args.config), "--bert_network", str(args.bert_network), "--epoch_num", str(epochs),
            "--seed", str(seed), "--save_finetune_checkpoint_path", str(run_dir / "ckpt"), "--output_dir", str(run_dir)]
    if start == "pretrained":
        argv += ["--load_pretrain_checkpoint_path", str(args.pretrained_checkpoint)]
    labels = str(args.splits_dir / "labels.json")
    if task == "ner":
        scores = run_ner.run(run_ner.parse_args(argv + ["--use_crf", "true", "--label2id_file_path", labels]))
        return float(scores["f1"])
    num_class = len(json.loads(Path(labels).read_text()))
    argv += ["--num_class", str(num_class), "--assessment_method", "accuracy"]
    return float(run_classifier.run(run_classifier.parse_args(argv))["accuracy"])


def summarise(runs: list[dict]) -> list[dict]:
    """Per training-set size: each start's mean, population standard deviation and values over seeds."""
    rows = []
    for size in sorted({run["train_size"] for run in runs}):
        row: dict = {"train_size": size}
        for start in STARTS:
            values = [run["score"] for run in runs if run["train_size"] == size and run["start"] == start]
            row[start] = {"mean": statistics.fmean(values), "std": statistics.pstdev(values), "values": values}
        row["gain"] = row["pretrained"]["mean"] - row["random"]["mean"]
        rows.append(row)
    return rows


def format_table(summary: list[dict], metric: str) -> str:
    lines = [f"held-out {metric}",
             "labels  pretrained (mean ± sd over seeds)  random weights (mean ± sd)  gain (points)"]
    for row in summary:
        cells = [f"{row[start]['mean']:.3f} ± {row[start]['std']:.3f}" for start in STARTS]
        lines.append(f"{row['train_size']:>6}  {cells[0]:>33}  {cells[1]:>26}  {100 * row['gain']:+13.1f}")
    return "\n".join(lines)


def plot(summary: list[dict], output: Path, title: str, metric: str) -> Path:
    figure, axis = plt.subplots(figsize=(7, 4.5))
    sizes = [row["train_size"] for row in summary]
    for start, color in zip(STARTS, ("tab:blue", "tab:gray")):
        means = [row[start]["mean"] for row in summary]
        spreads = [row[start]["std"] for row in summary]
        axis.errorbar(sizes, means, yerr=spreads, marker="o", capsize=4, color=color, label=f"{start} start")
        for row in summary:
            axis.scatter([row["train_size"]] * len(row[start]["values"]), row[start]["values"], color=color,
                         alpha=0.35, s=12)
    axis.set_xscale("log")
    axis.set_xticks(sizes, [str(size) for size in sizes])
    axis.set_xlabel("labeled training examples")
    axis.set_ylabel(f"held-out {metric}")
    axis.set_title(title)
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(output, dpi=100)
    plt.close(figure)
    return output


def compare(argv: list[str]) -> dict:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits_dir", type=Path, required=True)
    parser.add_argument("--vocab_file", type=Path, required=True)
    parser.add_argument("--bert_network", type=Path, required=True, help="the model YAML pretraining used")
    parser.add_argument("--pretrained_checkpoint", type=Path, required=True, help="file or run_pretrain.py directory")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--config", type=Path, default=Path(__file__).resolve().parent.parent / "configs" /
                        "finetune_compare.yaml", help="finetuning run config, the same for both starts")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--min_steps", type=int, default=150, help="optimizer steps at least, for small sets")
    parser.add_argument("--min_epochs", type=int, default=3)
    parser.add_argument("--overwrite", type=str2bool, default=False,
                        help="replace a non-empty --output_dir (default: refuse it)")
    args = parser.parse_args(argv)
    check_minimums(args, max_seq_length=8, min_steps=1, min_epochs=1)
    input_format = split_format(args.splits_dir)
    sets = labeled_sets(args.splits_dir)
    batch_size = load_run_config(args.config).batch_size
    # resolved once: every pretrained run starts from this file, and a missing one fails before the first run
    args.pretrained_checkpoint = latest_checkpoint(args.pretrained_checkpoint)
    check_apart({"--output_dir": args.output_dir},
                {"--splits_dir": args.splits_dir, "--pretrained_checkpoint": args.pretrained_checkpoint},
                replaces=True)
    with staged_output(args.output_dir, args.overwrite) as staging:
        result = run_all(args, input_format, sets, batch_size, staging)
        finish_output(staging, args.output_dir, "tools/compare_starts.py",
                      {key: str(value) for key, value in vars(args).items() if key not in ("output_dir", "overwrite")})
    print(f"\n{result['test_examples']} held-out examples\n{format_table(result['summary'], result['metric'])}\n\n"
          f"table: {args.output_dir / 'compare.json'}, plot: {args.output_dir / 'compare.png'}")
    return result


def run_all(args: argparse.Namespace, input_format: str, sets: dict[tuple[int, int], Path], batch_size: int,
            output: Path) -> dict:
    """Every (size, seed, start) run into output; writes compare.json, compare.txt and compare.png there."""
    task, metric = TASKS[input_format]
    test_file = args.splits_dir / f"test.{EXTENSIONS[input_format]}"
    records = output / "records"
    records.mkdir()
    test_records = to_records(test_file, records / "test.tfrecord", input_format, args)
    runs = []
    # the time left, estimated from the examples trained so far: runs differ in size and epochs, not in speed
    work = {key: key[0] * epochs_for(key[0], batch_size, args.min_steps, args.min_epochs) for key in sets}
    total_work, done_work, started = len(STARTS) * sum(work.values()), 0, time.perf_counter()
    for (size, seed), source in sets.items():
        train_records = to_records(source, records / f"{source.stem}.tfrecord", input_format, args)
        epochs = epochs_for(size, batch_size, args.min_steps, args.min_epochs)
        for start in STARTS:
            score = finetune_once(args, task, start, train_records, test_records, epochs, seed,
                                  output / "runs" / f"{start}_{size}_seed{seed}")
            runs.append({"start": start, "train_size": size, "seed": seed, "epochs": epochs, "score": score})
            done_work += work[size, seed]
            elapsed = time.perf_counter() - started
            print(f"== {start:>10} start, {size} labeled examples, seed {seed}: held-out {metric} {score:.4f} "
                  f"(run {len(runs)} of {len(STARTS) * len(sets)}, {clock(elapsed)} elapsed, about "
                  f"{clock(elapsed / done_work * (total_work - done_work))} left)", flush=True)
    summary = summarise(runs)
    test_size = sum(1 for line in open(test_file, encoding="utf-8") if line.strip())
    result = {"task": task, "metric": metric, "test_examples": test_size, "config": str(args.config),
              "pretrained_checkpoint": str(args.pretrained_checkpoint), "runs": runs,
              "summary": summary}
    (output / "compare.json").write_text(json.dumps(result, indent=2) + "\n")
    (output / "compare.txt").write_text(format_table(summary, metric) + "\n")
    plot(summary, output / "compare.png", f"{task}: pretrained vs random start, {test_size} held-out examples",
         metric)
    return result


def main(argv: list[str] | None = None) -> dict:
    return run_cli("compare_starts.py", compare, argv)


if __name__ == "__main__":
    main()
