"""Plain-text documents -> masked-LM / NSP pretraining records (TFRecord + schema json, or MindRecord).

Input: text files with one sentence a line and a blank line between documents (tools/wiki_to_text.py makes
them from a Wikipedia dump). Flags and defaults are those of google-research/bert create_pretraining_data.py.

    python tools/create_pretraining_data.py --input_file "text/*.txt" --output_dir records/ \
        --vocab_file vocab.txt --max_seq_length 128 --processes 8

The corpus is streamed in chunks of --docs_per_shard documents; each chunk becomes one shard, made by one of
--processes worker processes with its own seed, so memory stays bounded by the chunk size whatever the corpus
size, and the output is byte-identical for a given seed whatever the number of processes.

--next_sentence false writes records without NSP pairs (one contiguous segment of a document filling each record,
next_sentence_labels 0; the manifest's settings say so) for an MLM-only run (objective: mlm); --masked_lm_prob goes
up to 0.4, with --max_predictions_per_seq following it (docs/pretraining.md#budget-recipes).
"""
from __future__ import annotations

import argparse
import functools
import glob
import multiprocessing
import random
import sys
from collections import deque
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator

import numpy as np
from tqdm import tqdm

from src.cli import ArgumentParser, check_minimums, run_cli
from src.config import BertConfig, load_bert_config, str2bool
from src.data.corpus import read_documents
from src.data.instances import MaskingOptions, chinese_word_starts, create_training_instances, instance_to_features
from src.data.numpy_instances import create_instance_columns
from src.data.records import RECORD_SUFFIX, write_columns, write_records, write_schema
from src.data.tokenization import FullTokenizer
from src.files.paths import check_apart
from src.files.staging import file_sha256, finish_output, staged_output
from src.preemption import worker_ignores_signals

MAX_MASKED_LM_PROB = 0.4  # the highest rate measured to help (Wettig et al. 2022)


@dataclass(frozen=True)
class ShardSettings:
    vocab_file: str
    do_lower_case: bool
    options: MaskingOptions
    dupe_factor: int
    random_seed: int
    output_dir: str
    dataset_format: str
    chinese_whole_word: bool
    random_draws: str


def expand_inputs(patterns: str) -> list[Path]:
    files = sorted({Path(f) for pattern in patterns.split(",") for f in glob.glob(pattern.strip())})
    if not files:
        raise SystemExit(f"no input file matches '{patterns}': pass text files (one sentence a line, "
                         f"blank lines between documents), e.g. made by tools/wiki_to_text.py")
    return files


def document_chunks(files: list[Path], docs_per_chunk: int) -> Iterator[list[list[str]]]:
    chunk: list[list[str]] = []
    for path in files:
        for document in read_documents(path):
            chunk.append(document)
            if len(chunk) == docs_per_chunk:
                yield chunk
                chunk = []
    if chunk:
        yield chunk


def worker_tokenizer(vocab_file: str, do_lower_case: bool) -> FullTokenizer:
    """One tokenizer per worker process, so its cache of words split into pieces carries over between shards;
    a new one when the vocab file is another file or was rewritten."""
    stat = Path(vocab_file).stat()
    return _tokenizer_for(str(Path(vocab_file).resolve()), stat.st_mtime_ns, stat.st_size, do_lower_case)


@functools.lru_cache(maxsize=1)
def _tokenizer_for(vocab_file: str, modified_ns: int, size: int, do_lower_case: bool) -> FullTokenizer:
    return FullTokenizer(vocab_file, do_lower_case)


def make_shard(shard_index: int, documents: list[list[str]], settings: ShardSettings) -> tuple[Path, int, dict]:
    """Tokenize, pair, mask and write one chunk of documents. Runs in a worker process."""
    tokenizer = worker_tokenizer(settings.vocab_file, settings.do_lower_case)
    vocab_words = list(tokenizer.vocab)
    word_starts = None
    if settings.chinese_whole_word or settings.random_draws == "google":
        tokenized = [tokenizer.tokenize_batch(document) for document in documents]
    if settings.chinese_whole_word:
        import jieba
        jieba.setLogLevel(60)
        word_starts = [[chinese_word_starts(sentence, tokens, jieba.lcut) for sentence, tokens in zip(doc, tok_doc)]
                       for doc, tok_doc in zip(documents, tokenized)]
    rng = random.Random(settings.random_seed + shard_index)
    options = settings.options
    path = Path(settings.output_dir) / f"part-{shard_index:05d}{RECORD_SUFFIX[settings.dataset_format]}"
    if settings.random_draws == "numpy":
        ids = ([tokenizer.convert_tokens_to_ids(tokens) for tokens in document] for document in tokenized) \
            if word_starts else (tokenizer.ids_batch(document) for document in documents)  # each text tokenized once
        sentences = [[np.array(sentence, np.int32) for sentence in document] for document in ids]
        starts = [[np.array(flags, bool) for flags in document] for document in word_starts] if word_starts else None
        columns = create_instance_columns(sentences, options, vocab_words, rng,
                                          np.random.default_rng([settings.random_seed, shard_index]),
                                          settings.dupe_factor, starts)
        count = write_columns(columns, path, settings.dataset_format)
        return path, count, {name: values[0] for name, values in columns.items()} if count else {}
    instances = create_training_instances(tokenized, options, vocab_words, rng, settings.dupe_factor, word_starts)
    rows = [instance_to_features(instance, tokenizer.vocab, options.max_seq_length,
                                 options.max_predictions_per_seq) for instance in instances]
    count = write_records(rows, path, settings.dataset_format)
    return path, count, rows[0] if rows else {}


def create_pretraining_records(files: list[Path], settings: ShardSettings, docs_per_shard: int,
                               processes: int) -> dict[str, int]:
    """All shards, made by a bounded pool of workers into settings.output_dir; returns each shard's row count."""
    shards, total, example = {}, 0, {}
    progress = tqdm(desc="shards", unit="shard", file=sys.stderr, disable=None)  # a bar on terminals only

    def collect(result: tuple[Path, int, dict]) -> None:
        nonlocal total, example
        shards[result[0].name] = result[1]
        total += result[1]
        example = example or result[2]
        progress.update(1)

    chunks = document_chunks(files, docs_per_shard)
    if processes <= 1:
        for index, chunk in enumerate(chunks):
            collect(make_shard(index, chunk, settings))
    else:
        with multiprocessing.Pool(processes, initializer=worker_ignores_signals) as pool:
            pending: deque = deque()
            for index, chunk in enumerate(chunks):
                pending.append(pool.apply_async(make_shard, (index, chunk, settings)))
                while len(pending) >= 2 * processes:  # bounded: at most 2 chunks per worker in memory
                    collect(pending.popleft().get())
            while pending:
                collect(pending.popleft().get())
    progress.close()
    if not total:
        raise SystemExit(f"no pretraining instance came out of {len(files)} input file(s): are they empty?")
    if settings.dataset_format == "tfrecord":
        write_schema(example, total, Path(settings.output_dir) / "schema.json")
    return shards


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input_file", required=True, help="comma-separated files or globs")
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--vocab_file", required=True)
    parser.add_argument("--do_lower_case", type=str2bool, default=True)
    parser.add_argument("--do_whole_word_mask", type=str2bool, default=False)
    parser.add_argument("--chinese_word_segmentation", type=str2bool, default=False,
                        help="with --do_whole_word_mask: find Chinese word boundaries with jieba")
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--max_predictions_per_seq", type=int, default=None,
                        help="default: 20 (Google's) for a --masked_lm_prob up to 0.15; above it, the rate's budget "
                             "for a full record, round(max_seq_length x masked_lm_prob)")
    parser.add_argument("--random_seed", type=int, default=12345)
    parser.add_argument("--dupe_factor", type=int, default=10)
    parser.add_argument("--masked_lm_prob", type=float, default=0.15,
                        help=f"share of a record's tokens masked, in (0, {MAX_MASKED_LM_PROB}] (Wettig et al. 2022: "
                             f"0.4 beats 0.15)")
    parser.add_argument("--next_sentence", type=str2bool, default=True,
                        help="true: Google's NSP sentence pairs; false: MLM only, one contiguous segment of a "
                             "document filling each record, next_sentence_labels 0 (the manifest records it; train "
                             "on them with objective: mlm)")
    parser.add_argument("--short_seq_prob", type=float, default=0.1)
    parser.add_argument("--random_draws", choices=("google", "numpy"), default="google",
                        help="google: Python's random draws in the order of Google's script (its instances, byte for "
                             "byte, in one shard); numpy: the same distributions drawn in bulk, several times "
                             "faster, other instances (src/data/numpy_instances.py)")
    parser.add_argument("--dataset_format", choices=("tfrecord", "mindrecord"), default="tfrecord")
    parser.add_argument("--docs_per_shard", type=int, default=5000)
    parser.add_argument("--processes", type=int, default=max(1, multiprocessing.cpu_count() - 1))
    parser.add_argument("--config", help="model preset or YAML: checks the vocab fits its vocab_size")
    parser.add_argument("--overwrite", type=str2bool, default=False,
                        help="replace a non-empty --output_dir (default: refuse it)")
    return parser.parse_args(argv)


def check_vocab_fits(vocab_size: int, config: BertConfig, vocab_file: str, config_name: str) -> None:
    if vocab_size > config.vocab_size:
        raise SystemExit(f"vocab file {vocab_file} has {vocab_size} tokens but config '{config_name}' has "
                         f"vocab_size {config.vocab_size}: use a config whose vocab_size is at least {vocab_size}")


def full_record_budget(args: argparse.Namespace) -> int:
    """Google's count of masked tokens for a record of max_seq_length tokens."""
    return max(1, int(round(args.max_seq_length * args.masked_lm_prob)))


def check_settings(args: argparse.Namespace) -> None:
    """Checks the flags; sets max_predictions_per_seq when not given (it follows a masked_lm_prob above 0.15)."""
    if not 0 < args.masked_lm_prob <= MAX_MASKED_LM_PROB:
        raise ValueError(f"--masked_lm_prob {args.masked_lm_prob} is out of range: pass a share in "
                         f"(0, {MAX_MASKED_LM_PROB}] (0.15 is BERT's, 0.4 Wettig et al.'s)")
    if not 0 <= args.short_seq_prob <= 1:
        raise ValueError(f"--short_seq_prob {args.short_seq_prob} is out of range: pass a probability in [0, 1]")
    if args.max_predictions_per_seq is None:
        args.max_predictions_per_seq = 20 if args.masked_lm_prob <= 0.15 else full_record_budget(args)
    check_minimums(args, max_seq_length=8, max_predictions_per_seq=1, dupe_factor=1, docs_per_shard=1, processes=1)
    if args.masked_lm_prob > 0.15 and args.max_predictions_per_seq < full_record_budget(args):
        raise ValueError(f"--max_predictions_per_seq {args.max_predictions_per_seq} would cap --masked_lm_prob "
                         f"{args.masked_lm_prob} at {args.max_predictions_per_seq} of {args.max_seq_length} tokens: "
                         f"pass at least {full_record_budget(args)}, or leave it out to follow the rate")


def create(argv: list[str]) -> None:
    """Records into a staging directory, renamed into place with its manifest when every shard is complete."""
    args = parse_args(argv)
    check_settings(args)
    options = MaskingOptions(args.max_seq_length, args.short_seq_prob, args.masked_lm_prob,
                             args.max_predictions_per_seq, args.do_whole_word_mask, args.next_sentence)
    vocab_size = len(FullTokenizer(args.vocab_file, args.do_lower_case).vocab)
    if args.config:
        check_vocab_fits(vocab_size, load_bert_config(args.config), args.vocab_file, args.config)
    inputs = expand_inputs(args.input_file)
    check_apart({"--output_dir": args.output_dir},
                {"--vocab_file": args.vocab_file, **{f"--input_file ({path.name})": path for path in inputs}},
                replaces=True)
    with staged_output(args.output_dir, args.overwrite) as staging:
        settings = ShardSettings(args.vocab_file, args.do_lower_case, options, args.dupe_factor, args.random_seed,
                                 str(staging), args.dataset_format,
                                 args.do_whole_word_mask and args.chinese_word_segmentation, args.random_draws)
        rows = create_pretraining_records(inputs, settings, args.docs_per_shard, args.processes)
        recorded = {**asdict(options), "dupe_factor": args.dupe_factor, "random_seed": args.random_seed,
                    "random_draws": args.random_draws,
                    "do_lower_case": args.do_lower_case, "dataset_format": args.dataset_format,
                    "chinese_word_segmentation": settings.chinese_whole_word, "vocab_size": vocab_size,
                    "vocab_sha256": file_sha256(args.vocab_file), "docs_per_shard": args.docs_per_shard}
        finish_output(staging, args.output_dir, "tools/create_pretraining_data.py", recorded, rows)
    print(f"wrote {sum(rows.values())} instances in {len(rows)} shard(s) to {args.output_dir} "
          f"(vocab {vocab_size} tokens; settings {asdict(options)})")


def main(argv: list[str] | None = None) -> None:
    return run_cli("create_pretraining_data.py", create, argv)


if __name__ == "__main__":
    main()
