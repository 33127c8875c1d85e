"""MSRA-style NER data -> MindRecord, with the flags of the model zoo's finetune_data_preprocess.py.

    python tools/finetune_data_preprocess.py --data_dir msra/train.txt --vocab_file vocab.txt \
        --save_path data/msra_train.mindrecord --label2id labels.txt --max_seq_len 128 \
        --class_filter "NAMEX" --split_begin 0.0 --split_end 0.8

--data_dir: a BIO file (`character tag` a line, a blank line between sentences), or a directory whose .txt
files are read in name order. --label2id: one label a line (or a json). --class_filter keeps only these entity
types (comma-separated; the others become O). --split_begin/--split_end take that share of the sentences, so
one file gives train (0.0-0.8) and eval (0.8-1.0) sets.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.cli import ArgumentParser, run_cli  # noqa: E402
from src.finetune_data import TaggedExample, load_label2id, read_ner, tagging_features  # noqa: E402
from src.records import write_records  # noqa: E402
from src.tokenization import FullTokenizer  # noqa: E402


def keep_classes(example: TaggedExample, classes: set[str]) -> TaggedExample:
    tags = [tag if tag == "O" or tag.split("-", 1)[-1] in classes else "O" for tag in example.tags]
    return TaggedExample(example.tokens, tags, example.source)


def preprocess(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--vocab_file", required=True)
    parser.add_argument("--save_path", required=True)
    parser.add_argument("--label2id", required=True)
    parser.add_argument("--max_seq_len", type=int, default=128)
    parser.add_argument("--class_filter", default="", help="entity types to keep, comma-separated (default: all)")
    parser.add_argument("--split_begin", type=float, default=0.0)
    parser.add_argument("--split_end", type=float, default=1.0)
    args = parser.parse_args(argv)
    source = Path(args.data_dir)
    files = sorted(source.glob("*.txt")) if source.is_dir() else [source]
    examples = [e for path in files for e in read_ner(path, "bio")]
    if args.class_filter:
        classes = {c.strip() for c in args.class_filter.split(",") if c.strip()}
        examples = [keep_classes(e, classes) for e in examples]
    examples = examples[int(len(examples) * args.split_begin):int(len(examples) * args.split_end)]
    if not examples:
        raise ValueError(f"--split_begin {args.split_begin} / --split_end {args.split_end} select no sentence")
    tokenizer = FullTokenizer(args.vocab_file)
    label2id = load_label2id(args.label2id)
    rows = [tagging_features(e, tokenizer, label2id, args.max_seq_len, args.label2id) for e in examples]
    Path(args.save_path).parent.mkdir(parents=True, exist_ok=True)
    count = write_records(rows, args.save_path, "mindrecord")
    print(f"wrote {count} sentences to {args.save_path}")


def main(argv: list[str] | None = None) -> None:
    return run_cli("finetune_data_preprocess.py", preprocess, argv)


if __name__ == "__main__":
    main()
