"""A labeled text corpus -> the splits of a semi-supervised experiment: a held-out test set, labeled training
subsets of several sizes, and the rest as unlabeled pretraining text.

    python tools/split_labeled_text.py --input_file data/chinese_reviews.tsv.xz --output_dir out/splits \
        --test_size 2000 --train_sizes 100,500,2000 --seeds 0,1,2
    python tools/split_labeled_text.py --input_format peoples_daily --input_file pd.txt --output_dir out/ner_splits \
        --test_size 1000 --train_sizes 100,500,2000

Input (plain, .gz or .xz): `label<TAB>text` lines (label_text, for classification), or People's Daily lines,
`word/tag` two spaces apart (peoples_daily, for NER: nr/ns/nt words are PER/LOC/ORG entities). A repeated text
(white space aside) is kept once (label_text: a text found under two labels is dropped), so no test example also
sits in a training set or the pretraining text. Output:
- test.{tsv|txt}: test_size examples never used for training or pretraining (label_text: balanced over labels);
- train_{size}_seed{seed}.{tsv|txt}: a draw of that size from the other examples (label_text: balanced; per seed,
  the smaller sets are the start of the larger ones);
- pretrain_text.txt: the text of every non-test example, labels and tags dropped, one sentence a line
  (create_pretraining_data.py's input format; a review is a document, People's Daily paragraphs are grouped);
- labels.json: the label2id map for convert_task_data.py --label2id_file (label_text: labels sorted;
  peoples_daily: "O" then the BIO tags found, sorted).
The manifest records --input_format, so tools/compare_starts.py knows the task.
"""
from __future__ import annotations

import argparse
import json
import random
from collections import defaultdict
from pathlib import Path
from typing import Iterator

from src.cli import ArgumentParser, check_minimums, run_cli
from src.config import str2bool
from src.data.corpus import peoples_daily_documents, split_sentences, write_documents
from src.files.paths import check_apart
from src.files.staging import finish_output, staged_output
from src.files.text_input import text_lines
from src.tasks.task_files import peoples_daily_bio

INPUT_FORMATS = ("label_text", "peoples_daily")
EXTENSIONS = {"label_text": "tsv", "peoples_daily": "txt"}


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, stripped line) of the non-blank lines of a plain, .gz or .xz UTF-8 file."""
    for number, line in text_lines(path, "input file", "pass label<TAB>text lines or People's Daily text"):
        if line.strip():
            yield number, line.strip()


def text_key(text: str) -> str:
    """Texts that differ only in white space are the same text (one must not be tested while the other trains)."""
    return "".join(text.split())


def read_labeled_text(path: Path) -> dict[str, list[str]]:
    """Distinct texts per label, in file order; texts under more than one label are dropped."""
    labels_of: dict[str, set[str]] = defaultdict(set)
    first: dict[str, str] = {}
    for number, line in read_lines(path):
        label, tab, text = line.partition("\t")
        if not tab or not label or not text.strip():
            raise ValueError(f"{path}:{number}: expected label<TAB>text, got {line[:40]!r}")
        key = text_key(text)
        first.setdefault(key, text.strip())
        labels_of[key].add(label)
    by_label: dict[str, list[str]] = defaultdict(list)
    for key, text in first.items():
        if len(labels_of[key]) == 1:
            by_label[next(iter(labels_of[key]))].append(text)
    if len(by_label) < 2:
        raise ValueError(f"{path} holds {len(by_label)} label(s): a classification split needs at least 2")
    return dict(sorted(by_label.items()))


def balanced_take(pools: dict[str, list[str]], size: int, source: str) -> list[tuple[str, str]]:
    """size (label, text) pairs, as even over the labels as size allows, taken from the front of each pool."""
    labels = list(pools)
    counts = {label: size // len(labels) + (index < size % len(labels)) for index, label in enumerate(labels)}
    for label, count in counts.items():
        if count > len(pools[label]):
            raise ValueError(f"{source} has {len(pools[label])} texts labeled {label!r} left, {count} are needed: "
                             f"lower --test_size or --train_sizes")
    return [(label, text) for label in labels for text in pools[label][:counts[label]]]


def write_tsv(pairs: list[tuple[str, str]], path: Path, seed: int) -> None:
    pairs = list(pairs)
    random.Random(seed).shuffle(pairs)
    path.write_text("".join(f"{label}\t{text}\n" for label, text in pairs), encoding="utf-8")


def read_tagged_lines(path: Path) -> list[str]:
    """People's Daily lines with distinct text (the first of those whose words are the same), in file order;
    a line without any word/tag item is refused."""
    lines: dict[str, str] = {}
    for _, line in read_lines(path):
        characters = peoples_daily_bio(line)[0]
        if not characters:
            raise ValueError(f"{path} has a line without word/tag items ({line[:40]!r}): pass People's Daily "
                             f"text, or --input_format label_text for label<TAB>text lines")
        lines.setdefault(text_key("".join(characters)), line)
    return list(lines.values())


def split_tagged(args: argparse.Namespace, output: Path) -> dict:
    """peoples_daily: random test and training draws (no labels to balance); paragraphs grouped into documents."""
    lines = read_tagged_lines(args.input_file)
    if args.test_size + max(args.train_sizes) > len(lines):
        raise ValueError(f"{args.input_file} has {len(lines)} distinct lines, fewer than --test_size plus the "
                         f"largest of --train_sizes: lower them")
    test_positions = set(random.Random(args.test_seed).sample(range(len(lines)), args.test_size))
    test = [line for index, line in enumerate(lines) if index in test_positions]
    rest = [line for index, line in enumerate(lines) if index not in test_positions]
    (output / "test.txt").write_text("\n".join(test) + "\n", encoding="utf-8")
    for seed in args.seeds:
        draw = random.Random(seed).sample(rest, max(args.train_sizes))
        for size in args.train_sizes:
            (output / f"train_{size}_seed{seed}.txt").write_text("\n".join(draw[:size]) + "\n", encoding="utf-8")
    write_documents(peoples_daily_documents(rest), output / "pretrain_text.txt")
    tags = sorted({tag for line in lines for tag in peoples_daily_bio(line)[1]} - {"O"})
    (output / "labels.json").write_text(json.dumps({tag: i for i, tag in enumerate(["O", *tags])}) + "\n")
    return {"texts": len(lines), "test": len(test), "pretraining_texts": len(rest)}


def split(args: argparse.Namespace, output: Path) -> dict:
    if args.input_format == "peoples_daily":
        return split_tagged(args, output)
    by_label = read_labeled_text(args.input_file)
    rng = random.Random(args.test_seed)
    shuffled = {label: rng.sample(texts, len(texts)) for label, texts in by_label.items()}
    test = balanced_take(shuffled, args.test_size, str(args.input_file))
    test_texts = {text for _, text in test}
    rest = {label: [t for t in texts if t not in test_texts] for label, texts in shuffled.items()}
    write_tsv(test, output / "test.tsv", args.test_seed)
    for seed in args.seeds:
        pools = {label: random.Random(f"{seed}:{label}").sample(texts, len(texts)) for label, texts in rest.items()}
        for size in args.train_sizes:
            write_tsv(balanced_take(pools, size, f"{args.input_file} without the test set"),
                      output / f"train_{size}_seed{seed}.tsv", seed)
    unlabeled = [text for texts in rest.values() for text in texts]
    random.Random(args.test_seed).shuffle(unlabeled)
    write_documents((split_sentences(text, "zh") or [text] for text in unlabeled), output / "pretrain_text.txt")
    (output / "labels.json").write_text(json.dumps({label: i for i, label in enumerate(by_label)}) + "\n")
    return {"texts": sum(map(len, by_label.values())), "test": len(test), "pretraining_texts": len(unlabeled)}


def split_labeled_text(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_file", type=Path, required=True, help="plain, .gz or .xz text")
    parser.add_argument("--input_format", choices=INPUT_FORMATS, default="label_text")
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--test_size", type=int, default=2000)
    parser.add_argument("--train_sizes", default="100,500,2000", help="comma-separated labeled set sizes")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated: one draw of the training sets each")
    parser.add_argument("--test_seed", type=int, default=0, help="the draw of the test set and the text order")
    parser.add_argument("--overwrite", type=str2bool, default=False,
                        help="replace a non-empty --output_dir (default: refuse it)")
    args = parser.parse_args(argv)
    try:
        args.train_sizes = sorted({int(size) for size in args.train_sizes.split(",")})
        args.seeds = [int(seed) for seed in args.seeds.split(",")]
    except ValueError:
        raise ValueError("--train_sizes and --seeds take comma-separated integers, e.g. 100,500,2000") from None
    check_minimums(args, test_size=1)
    if min(args.train_sizes) < 1:
        raise ValueError("--train_sizes must be at least 1")
    check_apart({"--output_dir": args.output_dir}, {"--input_file": args.input_file}, replaces=True)
    with staged_output(args.output_dir, args.overwrite) as staging:
        counts = split(args, staging)
        settings = {key: value for key, value in vars(args).items() if key not in ("output_dir", "overwrite")}
        finish_output(staging, args.output_dir, "tools/split_labeled_text.py",
                      {**settings, "input_file": args.input_file.name})
    print(f"{counts['texts']} distinct examples -> test {counts['test']}, training sets {args.train_sizes} x seeds "
          f"{args.seeds}, the text of {counts['pretraining_texts']} for pretraining, in {args.output_dir}")


def main(argv: list[str] | None = None) -> None:
    return run_cli("split_labeled_text.py", split_labeled_text, argv)


if __name__ == "__main__":
    main()
