"""Wikipedia dump (.xml or .xml.bz2) -> plain-text documents for tools/create_pretraining_data.py.

Runs wikiextractor (the real package) on the dump, then writes one sentence a line, a blank line between
articles, one output file per wikiextractor file:

    python tools/wiki_to_text.py --input zhwiki-latest-pages-articles.xml.bz2 --output_dir wiki_text/ --processes 8
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.cli import ArgumentParser, check_minimums, run_cli  # noqa: E402
from src.config import str2bool  # noqa: E402
from src.corpus import wikiextractor_documents, write_documents  # noqa: E402
from src.output_dir import finish_output, start_output  # noqa: E402


def extract(dump: Path, output_dir: Path, processes: int) -> list[Path]:
    """Text files into output_dir (a staging directory: see wiki_to_text)."""
    written = []
    with tempfile.TemporaryDirectory() as extracted:
        command = [sys.executable, "-m", "wikiextractor.WikiExtractor", str(dump), "-o", extracted,
                   "--processes", str(processes), "-q"]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            last = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise SystemExit(f"wikiextractor failed on {dump}: {last}")
        for index, part in enumerate(sorted(Path(extracted).rglob("wiki_*"))):
            target = output_dir / f"wiki_{index:04d}.txt"
            with open(part, encoding="utf-8") as handle:
                if write_documents(wikiextractor_documents(handle), target):
                    written.append(target)
                else:
                    target.unlink()
    if not written:
        raise SystemExit(f"{dump} yielded no article text: is it a pages-articles dump?")
    return written


def wiki_to_text(argv: list[str]) -> None:
    parser = ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--overwrite", type=str2bool, default=False,
                        help="replace a non-empty --output_dir (default: refuse it)")
    args = parser.parse_args(argv)
    check_minimums(args, processes=1)
    if not args.input.is_file():
        raise SystemExit(f"Wikipedia dump {args.input} does not exist: pass a pages-articles .xml or .xml.bz2 file")
    staging = start_output(args.output_dir, args.overwrite)
    try:
        files = extract(args.input, staging, args.processes)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finish_output(staging, args.output_dir, "tools/wiki_to_text.py", {"input": args.input.name})
    print(f"wrote {len(files)} text file(s) to {args.output_dir}")


def main(argv: list[str] | None = None) -> None:
    return run_cli("wiki_to_text.py", wiki_to_text, argv)


if __name__ == "__main__":
    main()
