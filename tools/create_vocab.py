"""Train a BERT WordPiece vocab.txt on plain-text files (the `tokenizers` package), for users without one.

    python tools/create_vocab.py --input_file "wiki_text/*.txt" --output_dir vocab/ --vocab_size 30000 --config base

With --config, also writes model.yaml beside vocab.txt: that model preset with vocab_size set to the vocab's size,
ready for run_pretrain.py --bert_network. The same text gives the same vocab.txt on every run. The input must be UTF-8
(convert other encodings first, e.g. iconv -f GB18030 -t UTF-8). As every data tool, it writes through a staging
directory (all files or none, with a manifest) and refuses a non-empty --output_dir without --overwrite true: records
and checkpoints made with the vocab there would no longer match it.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from src.cli import ArgumentParser, run_cli
from src.config import load_bert_config, save_bert_config, str2bool
from src.data.tokenization import train_vocab
from src.files.paths import check_apart
from src.files.staging import finish_output, staged_output
from src.files.text_input import text_lines
from tools.create_pretraining_data import expand_inputs


def main(argv: list[str] | None = None) -> None:
    """The command line; a bad input ends in one line on stderr (src/cli.py)."""
    run_cli("create_vocab.py", create_vocab, argv)


def create_vocab(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_file", required=True, help="comma-separated files or globs")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--vocab_size", type=int, default=30000)
    parser.add_argument("--min_frequency", type=int, default=2)
    parser.add_argument("--do_lower_case", type=str2bool, default=True)
    parser.add_argument("--config", help="model preset or YAML to write as model.yaml with this vocab's size")
    parser.add_argument("--overwrite", type=str2bool, default=False,
                        help="replace a non-empty --output_dir (default: refuse it)")
    args = parser.parse_args(argv)
    inputs = expand_inputs(args.input_file)
    check_apart({"--output_dir": args.output_dir}, {f"--input_file ({path.name})": path for path in inputs},
                replaces=True)
    model = load_bert_config(args.config) if args.config else None  # a bad preset fails before the training
    with staged_output(args.output_dir, args.overwrite) as staging:
        path = train_vocab(inputs, staging, args.vocab_size, args.min_frequency, args.do_lower_case)
        size = sum(1 for _ in text_lines(path, "vocab file"))
        if model is not None:
            save_bert_config(model.replace(vocab_size=size), staging / "model.yaml")
        finish_output(staging, args.output_dir, "tools/create_vocab.py",
                      {"vocab_size": args.vocab_size, "min_frequency": args.min_frequency,
                       "do_lower_case": args.do_lower_case, "config": args.config or ""}, {"vocab.txt": size})
    print(f"wrote {Path(args.output_dir) / 'vocab.txt'} ({size} tokens)")
    if model is not None:
        print(f"wrote {Path(args.output_dir) / 'model.yaml'} ({args.config} with vocab_size {size})")


if __name__ == "__main__":
    main()
