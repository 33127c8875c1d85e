"""Pretraining data preparation: tools/create_pretraining_data.py (1 and 2 processes) against Google's
create_pretraining_data.py (the bert-tensorflow package) on the same text and settings; and FullTokenizer
throughput, ours against Google's.

    python bench/data_prep_vs_google.py [--google_python PYTHON] [--dupe_factor 2]

Google's script is TF1 code. It runs under TensorFlow 2 through tests/google_bert.py (tf.compat.v1 plus two
shimmed names), in the Python given by --google_python (default: this one; requirements-dev.txt installs
tensorflow-cpu and bert-tensorflow). Without them, only our side runs, and the script says so.

Text: the shipped English Wikipedia sample through wikiextractor, --repeat copies of it (one sentence a line, documents
apart), a WordPiece vocab trained on it; seq 128, 20 predictions, masked_lm_prob 0.15, short_seq_prob 0.1, random seed
12345, no whole-word masking (the bert-tensorflow release predates that flag). Each side runs as a subprocess,
timed by wall clock, which includes its start-up. Printed: documents/s, instances/s, instances written, and the
ratio to Google's. Ours writes 8 shards (--docs_per_shard), so 2 processes have work to share, and runs with
--random_draws google (Google's exact draws) and numpy (the same distributions drawn in bulk).
"""
from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

TOKENIZER_RUN = """
import sys, time
sys.path.insert(0, sys.argv[3])
lines = [line for line in open(sys.argv[2], encoding="utf-8") if line.strip()]
if sys.argv[1] == "google":
    from tests.google_bert import google_full_tokenizer
    tokenizer = google_full_tokenizer(sys.argv[4], True)
else:
    from src.data.tokenization import FullTokenizer
    tokenizer = FullTokenizer(sys.argv[4], True)
start = time.perf_counter()
tokens = sum(len(tokenizer.tokenize(line)) for line in lines)
print(len(lines) / (time.perf_counter() - start), tokens)
"""


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--google_python", default=sys.executable,
                        help="a Python with tensorflow-cpu, tf-slim and bert-tensorflow (default: this one)")
    parser.add_argument("--dupe_factor", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=10,
                        help="copies of the sample's documents in the input, so start-up is a small share")
    return parser.parse_args()


def count_documents(text: Path) -> int:
    return sum(1 for block in text.read_text(encoding="utf-8").split("\n\n") if block.strip())


def count_instances(output: Path) -> int:
    from src.data.records import iter_tfrecord
    files = [output] if output.is_file() else sorted(output.glob("*.tfrecord"))
    return sum(1 for path in files for _ in iter_tfrecord(path))


def timed(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    args = parse_args()
    from src.data.tokenization import train_vocab
    from tools import wiki_to_text
    env = {**os.environ, "GLOG_v": "3", "TF_CPP_MIN_LOG_LEVEL": "3", "TOKENIZERS_PARALLELISM": "false"}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        wiki_to_text.main(["--input", str(ROOT / "data" / "enwiki-sample-pages-articles.xml.bz2"),
                           "--output_dir", str(scratch / "text")])
        text = scratch / "all.txt"
        sample = "\n\n".join(p.read_text(encoding="utf-8").strip("\n")
                             for p in sorted((scratch / "text").glob("*.txt")))
        text.write_text("\n\n".join([sample] * args.repeat) + "\n", encoding="utf-8")
        vocab = train_vocab([text], scratch / "vocab", vocab_size=8000)
        settings = ["--max_seq_length", "128", "--max_predictions_per_seq", "20", "--masked_lm_prob", "0.15",
                    "--short_seq_prob", "0.1", "--random_seed", "12345", "--dupe_factor", str(args.dupe_factor)]
        documents = count_documents(text)
        rows = {}
        for draws, processes in itertools.product(("google", "numpy"), (1, 2)):
            output = scratch / f"ours_{draws}_{processes}"
            seconds = timed([sys.executable, str(ROOT / "tools" / "create_pretraining_data.py"), "--input_file",
                             str(text), "--output_dir", str(output), "--vocab_file", str(vocab), "--processes",
                             str(processes), "--docs_per_shard", str(max(documents // 8, 1)), "--random_draws", draws,
                             *settings], env)
            name = f"ours, {draws} draws, {processes} process{'es' if processes > 1 else ''}"
            rows[name] = (seconds, count_instances(output))
        tokenizer_rates = {"ours": subprocess.run(
            [sys.executable, "-c", TOKENIZER_RUN, "ours", str(text), str(ROOT), str(vocab)], check=True,
            capture_output=True, text=True, env=env).stdout.split()}
        has_google = subprocess.run([args.google_python, "-c", "import bert, tensorflow, tf_slim"],
                                    capture_output=True).returncode == 0
        if has_google:
            output = scratch / "google.tfrecord"
            seconds = timed([args.google_python, str(ROOT / "tests" / "google_bert.py"), "create_pretraining_data",
                             f"--input_file={text}",
                             f"--output_file={output}", f"--vocab_file={vocab}", "--do_lower_case=True",
                             *(f"{flag}={value}" for flag, value in zip(settings[::2], settings[1::2]))], env)
            rows["Google's (bert-tensorflow, TF 2 compat.v1)"] = (seconds, count_instances(output))
            tokenizer_rates["Google's"] = subprocess.run(
                [args.google_python, "-c", TOKENIZER_RUN, "google", str(text), str(ROOT), str(vocab)], check=True,
                capture_output=True, text=True, env=env).stdout.split()
        else:
            print(f"Google's side skipped: {args.google_python} lacks tensorflow-cpu, tf-slim or bert-tensorflow "
                  f"(pip install -r requirements-dev.txt)")
    google = rows.get("Google's (bert-tensorflow, TF 2 compat.v1)")
    print(f"{documents} documents ({args.repeat} copies of the Wikipedia sample), dupe_factor {args.dupe_factor}, "
          f"seq 128, 2 CPU cores; wall clock including start-up")
    for name, (seconds, instances) in rows.items():
        ratio = f"   {google[0] / seconds:5.2f}x Google's documents/s" if google else ""
        print(f"  {name:45s} {documents / seconds:8.1f} documents/s  {instances / seconds:8.1f} instances/s  "
              f"({instances} instances){ratio}")
    for name, (rate, tokens) in tokenizer_rates.items():
        print(f"  FullTokenizer, {name:8s} {float(rate):9.0f} lines/s ({tokens} tokens)")


if __name__ == "__main__":
    main()
