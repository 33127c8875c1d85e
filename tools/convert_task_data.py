"""Classification, NER or SQuAD files -> finetuning records (TFRecord + schema json, or MindRecord).

    # Chinese sentiment, label<TAB>text lines
    python tools/convert_task_data.py --task classification --input_format label_text --input_file train.tsv \
        --output_file data/train.tfrecord --vocab_file vocab.txt --label2id_file labels.json --create_label2id true
    # CLUENER2020
    python tools/convert_task_data.py --task ner --input_format cluener_json --input_file cluener/train.json \
        --output_file data/ner_train.tfrecord --vocab_file vocab.txt --label2id_file ner_labels.json

    # SQuAD v1.1 training file (evaluation reads the json directly: run_squad.py --eval_json_path)
    python tools/convert_task_data.py --task squad --input_file train-v1.1.json --output_file data/squad.tfrecord \
        --vocab_file vocab.txt --max_seq_length 384 --doc_stride 128 --max_query_length 64
    # SQuAD v2.0: questions without an answer are skipped (and counted) unless --version_2_with_negative true
    python tools/convert_task_data.py --task squad --input_file train-v2.0.json --output_file data/squad2.tfrecord \
        --vocab_file vocab.txt --max_seq_length 384 --doc_stride 128 --max_query_length 64 \
        --version_2_with_negative true

Formats: classification clue_json | glue_tsv | label_text; NER cluener_json | bio | peoples_daily
(src/tasks/task_files.py); SQuAD v1.1 / v2.0 json (src/tasks/squad.py). With --create_label2id true and no label2id file
yet, the labels found in this file are written to it (NER: "O" first); convert the evaluation file with the same
label2id file. --regression true keeps the label as a float (STS-B) and needs no label2id. The schema json is written
beside the records as {output_file}.schema.json, and {output_file}.task.json (src/tasks/task_card.py: task, labels in id
order, vocab and tokenizer settings), which finetuning checks its flags against and copies beside its checkpoints.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from src.cli import ArgumentParser, run_cli
from src.config import str2bool
from src.data.records import write_records, write_schema
from src.data.tokenization import FullTokenizer
from src.files.paths import check_apart
from src.files.staging import file_sha256
from src.tasks.squad import convert_examples_to_features, feature_columns, read_squad_examples
from src.tasks.task_card import TaskCard, write_records_card
from src.tasks.task_files import (
    CLASSIFICATION_FORMATS,
    NER_FORMATS,
    classification_features,
    label_id,
    load_label2id,
    load_ner_label2id,
    read_classification,
    read_ner,
    tagging_features,
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=("classification", "ner", "squad"), required=True)
    parser.add_argument("--input_format", choices=CLASSIFICATION_FORMATS + NER_FORMATS + ("squad_json",),
                        default="squad_json")
    parser.add_argument("--input_file", required=True)
    parser.add_argument("--output_file", required=True)
    parser.add_argument("--vocab_file", required=True)
    parser.add_argument("--label2id_file", default="")
    parser.add_argument("--create_label2id", type=str2bool, default=False)
    parser.add_argument("--regression", type=str2bool, default=False)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--doc_stride", type=int, default=128, help="SQuAD: step between document windows")
    parser.add_argument("--max_query_length", type=int, default=64, help="SQuAD: question tokens kept")
    parser.add_argument("--version_2_with_negative", type=str2bool, default=False,
                        help="SQuAD v2.0: train questions without an answer to point at [CLS] instead of skipping them")
    parser.add_argument("--do_lower_case", type=str2bool, default=True)
    parser.add_argument("--dataset_format", choices=("tfrecord", "mindrecord"), default="tfrecord")
    return parser.parse_args(argv)


def labels_for(args: argparse.Namespace, found: list[str], load=load_label2id) -> dict[str, int]:
    path = Path(args.label2id_file)
    if not args.label2id_file:
        raise SystemExit("--label2id_file is required (pass --create_label2id true to write it from this file)")
    if not path.exists() and args.create_label2id:
        ordered = sorted(set(found), key=lambda label: (label != "O", label))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({label: index for index, label in enumerate(ordered)}, ensure_ascii=False,
                                   indent=1), encoding="utf-8")
        print(f"wrote {path} ({len(ordered)} labels)")
    return load(path)


def convert(args: argparse.Namespace) -> int:
    check_apart({"--output_file": args.output_file},
                {"--input_file": args.input_file, "--vocab_file": args.vocab_file,
                 "--label2id_file": args.label2id_file})
    tokenizer = FullTokenizer(args.vocab_file, args.do_lower_case)
    labels_in_order: tuple[str, ...] = ()
    token_unit = "character"
    if args.task == "classification":
        if args.input_format not in CLASSIFICATION_FORMATS:
            raise SystemExit(f"--input_format {args.input_format} is not a classification format; classification takes "
                             f"{', '.join(CLASSIFICATION_FORMATS)}")
        examples = read_classification(args.input_file, args.input_format)
        if args.regression:
            labels = [_number(e.label, e.source) for e in examples]
        else:
            label2id = labels_for(args, [e.label for e in examples])
            labels = [label_id(label2id, e.label, e.source, args.label2id_file) for e in examples]
            labels_in_order = tuple(sorted(label2id, key=label2id.get))
        rows = [classification_features(e, tokenizer, label, args.max_seq_length)
                for e, label in zip(examples, labels)]
    elif args.task == "squad":
        features = convert_examples_to_features(read_squad_examples(args.input_file), tokenizer, args.max_seq_length,
                                                args.doc_stride, args.max_query_length, is_training=True,
                                                version_2_with_negative=args.version_2_with_negative)
        rows = [feature_columns(feature, is_training=True) for feature in features]
    else:
        if args.input_format not in NER_FORMATS:
            raise SystemExit(f"--input_format {args.input_format} is not a NER format; NER takes "
                             f"{', '.join(NER_FORMATS)}")
        examples = read_ner(args.input_file, args.input_format)
        label2id = labels_for(args, [tag for e in examples for tag in e.tags] + ["O"], load_ner_label2id)
        labels_in_order = tuple(sorted(label2id, key=label2id.get))
        token_unit = "character" if all(len(token) == 1 for e in examples for token in e.tokens) else "word"
        rows = [tagging_features(e, tokenizer, label2id, args.max_seq_length, args.label2id_file) for e in examples]
    output = Path(args.output_file)
    output.parent.mkdir(parents=True, exist_ok=True)
    count = write_records(rows, output, args.dataset_format)
    if args.dataset_format == "tfrecord":
        write_schema(rows[0], count, f"{output}.schema.json")
    write_records_card(output, TaskCard(
        task=args.task, max_seq_length=args.max_seq_length, do_lower_case=args.do_lower_case, labels=labels_in_order,
        token_unit=token_unit, doc_stride=args.doc_stride, max_query_length=args.max_query_length,
        vocab_sha256=file_sha256(args.vocab_file), vocab_file=str(Path(args.vocab_file).resolve())))
    return count


def _number(label: str, source: str) -> float:
    try:
        return float(label)
    except ValueError:
        raise ValueError(f"{source}: regression label '{label}' is not a number") from None


def main(argv: list[str] | None = None) -> None:
    """The command line; a bad input ends in one line on stderr (src/cli.py)."""
    run_cli("convert_task_data.py", convert_files, argv)


def convert_files(argv: list[str]) -> None:
    args = parse_args(argv)
    count = convert(args)
    print(f"wrote {count} examples to {args.output_file}")


if __name__ == "__main__":
    main()
