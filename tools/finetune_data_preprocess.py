"""MSRA NER data -> MindRecord, with the model zoo's finetune_data_preprocess.py flags and meaning.

    python tools/finetune_data_preprocess.py --data_dir=/path/msra_dataset.xml --vocab_file=vocab.txt \
        --save_path=data/msra_train.mindrecord --label2id=labels.txt --max_seq_len=128 \
        --class_filter="NAMEX" --split_begin=0.0 --split_end=0.8

--data_dir: the MSRA XML release (GB18030 or UTF-8; sentences of phrases whose child elements are labelled words,
`<NAMEX TYPE="PERSON">...</NAMEX>`), or BIO text (`character tag` a line, a blank line between sentences), or a
directory whose .txt files are BIO text, read in name order. --data_format auto tells XML by its first '<'.
--label2id: the zoo's list of entity types, one a line ("PERSON"), standing for O and S_/B_/M_/E_ of each type in
that order; or a full tag list / label2id json. --class_filter: for XML the element tags to label (the zoo's
meaning: NAMEX labels names, TIMEX and NUMEX become O); for BIO the entity types to keep. Space or comma
separated; empty labels everything. --split_begin/--split_end take that share of the sentences, so one file gives
train (0.0-0.8) and eval (0.8-1.0) sets. A records card ({save_path}.task.json) is written beside the records.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from src.cli import ArgumentParser, run_cli
from src.data.records import write_records
from src.data.tokenization import FullTokenizer
from src.files.staging import file_sha256
from src.files.text_input import leading_bytes
from src.tasks.task_card import TaskCard, write_records_card
from src.tasks.task_files import TaggedExample, load_ner_label2id, read_msra_xml, read_ner, tagging_features


def keep_classes(example: TaggedExample, classes: set[str]) -> TaggedExample:
    tags = [tag if tag == "O" or tag[2:] in classes else "O" for tag in example.tags]
    return TaggedExample(example.tokens, tags, example.source)


def preprocess(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", required=True)
    parser.add_argument("--vocab_file", required=True)
    parser.add_argument("--save_path", required=True)
    parser.add_argument("--label2id", required=True)
    parser.add_argument("--max_seq_len", type=int, default=128)
    parser.add_argument("--class_filter", nargs="*", default=[],
                        help="XML: element tags to label; BIO: entity types to keep (default: all)")
    parser.add_argument("--split_begin", type=float, default=0.0)
    parser.add_argument("--split_end", type=float, default=1.0)
    parser.add_argument("--data_format", choices=("auto", "msra_xml", "bio"), default="auto")
    args = parser.parse_args(argv)
    if not 0.0 <= args.split_begin < args.split_end <= 1.0:
        raise SystemExit(f"--split_begin {args.split_begin} / --split_end {args.split_end}: need 0 <= begin < end <= 1")
    classes = {c for item in args.class_filter for c in item.replace(",", " ").split()} or None
    source = Path(args.data_dir)
    if not source.exists():
        raise SystemExit(f"--data_dir {source} does not exist: pass the MSRA XML file or BIO text")
    files = sorted(source.glob("*.txt")) if source.is_dir() else [source]
    if data_format(files[0] if files else source, args.data_format) == "msra_xml":
        examples = [e for path in files for e in read_msra_xml(path, classes)]
    else:
        examples = [keep_classes(e, classes) if classes else e for path in files for e in read_ner(path, "bio")]
    examples = examples[int(len(examples) * args.split_begin):int(len(examples) * args.split_end)]
    if not examples:
        raise ValueError(f"--split_begin {args.split_begin} / --split_end {args.split_end} select no sentence")
    tokenizer = FullTokenizer(args.vocab_file)
    label2id = load_ner_label2id(args.label2id)
    rows = [tagging_features(e, tokenizer, label2id, args.max_seq_len, args.label2id) for e in examples]
    Path(args.save_path).parent.mkdir(parents=True, exist_ok=True)
    count = write_records(rows, args.save_path, "mindrecord")
    write_records_card(args.save_path, TaskCard(
        task="ner", max_seq_length=args.max_seq_len, labels=tuple(sorted(label2id, key=label2id.get)),
        vocab_sha256=file_sha256(args.vocab_file), vocab_file=str(Path(args.vocab_file).resolve())))
    print(f"wrote {count} sentences to {args.save_path} ({len(label2id)} tags: {', '.join(list(label2id)[:6])}"
          f"{' ...' if len(label2id) > 6 else ''})")


def data_format(path: Path, requested: str) -> str:
    """msra_xml when the file's first non-blank character is '<', else bio (for --data_format auto)."""
    if requested != "auto":
        return requested
    head = leading_bytes(path, "--data_dir file", "pass the MSRA XML file, BIO text, or a directory of .txt BIO "
                                                  "files").lstrip(b" \t\r\n")
    return "msra_xml" if head.startswith(b"<") else "bio"


def main(argv: list[str] | None = None) -> None:
    return run_cli("finetune_data_preprocess.py", preprocess, argv)


if __name__ == "__main__":
    main()
