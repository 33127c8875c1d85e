"""Wikipedia dump (.xml or .xml.bz2) -> plain-text documents for tools/create_pretraining_data.py.

Runs wikiextractor (the real package) on the dump, then writes one sentence a line, a blank line between
articles, one output file per wikiextractor file:

    python tools/wiki_to_text.py --input zhwiki-latest-pages-articles.xml.bz2 --output_dir wiki_text/ --processes 8
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from src.corpus import wikiextractor_documents, write_documents  # noqa: E402


def extract(dump: Path, output_dir: Path, processes: int) -> list[Path]:
    if not dump.is_file():
        raise SystemExit(f"Wikipedia dump {dump} does not exist: pass a pages-articles .xml or .xml.bz2 file")
    output_dir.mkdir(parents=True, exist_ok=True)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input", type=Path, required=True)
    parser.add_argument("--output_dir", type=Path, required=True)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args(argv)
    files = extract(args.input, args.output_dir, args.processes)
    print(f"wrote {len(files)} text file(s) to {args.output_dir}")


if __name__ == "__main__":
    main()
