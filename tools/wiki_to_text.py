"""Wikipedia dump (.xml or .xml.bz2) -> plain-text documents for tools/create_pretraining_data.py.

Runs wikiextractor (the real package) on the dump, then writes one sentence a line, a blank line between
articles, one output file per wikiextractor file:

    python tools/wiki_to_text.py --input zhwiki-latest-pages-articles.xml.bz2 --output_dir wiki_text/ --processes 8

Sentences are split by the rules of the dump's language (src/data/corpus.py: Chinese punctuation for zh, sentencex for
the others); --language overrides the code read from the dump's header (xml:lang, else <dbname>).
"""
from __future__ import annotations

import argparse
import bz2
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from src.cli import ArgumentParser, check_minimums, run_cli
from src.config import str2bool
from src.data.corpus import wikiextractor_documents, write_documents
from src.files.paths import check_apart
from src.files.staging import finish_output, staged_output


def dump_language(dump: Path) -> str:
    """The language code in a MediaWiki dump's header: <mediawiki xml:lang="ru">, else <dbname>ruwiki</dbname>."""
    opener = bz2.open if dump.suffix == ".bz2" else open
    try:
        with opener(dump, "rb") as handle:
            head = handle.read(1 << 16).decode("utf-8", errors="replace")
    except OSError as error:
        raise SystemExit(f"cannot read {dump} ({error}): pass a pages-articles .xml or .xml.bz2 dump") from None
    found = re.search(r'<mediawiki[^>]*\sxml:lang="([^"]+)"', head) or re.search(r"<dbname>(\w+?)wiki</dbname>", head)
    if not found:
        raise SystemExit(f"{dump} names no language in its header: pass --language (a Wikipedia code: en, zh, ru, ...)")
    return found.group(1).replace("_", "-")


def extract(dump: Path, output_dir: Path, processes: int, language: str) -> list[Path]:
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
                if write_documents(wikiextractor_documents(handle, language), target):
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
    parser.add_argument("--language", default="",
                        help="language code for sentence splitting (default: from the dump's header)")
    parser.add_argument("--overwrite", type=str2bool, default=False,
                        help="replace a non-empty --output_dir (default: refuse it)")
    args = parser.parse_args(argv)
    check_minimums(args, processes=1)
    if not args.input.is_file():
        raise SystemExit(f"Wikipedia dump {args.input} does not exist: pass a pages-articles .xml or .xml.bz2 file")
    check_apart({"--output_dir": args.output_dir}, {"--input": args.input}, replaces=True)
    language = args.language or dump_language(args.input)
    with staged_output(args.output_dir, args.overwrite) as staging:
        files = extract(args.input, staging, args.processes, language)
        finish_output(staging, args.output_dir, "tools/wiki_to_text.py",
                      {"input": args.input.name, "language": language})
    print(f"wrote {len(files)} text file(s) to {args.output_dir} (sentences split as '{language}')")


def main(argv: list[str] | None = None) -> None:
    return run_cli("wiki_to_text.py", wiki_to_text, argv)


if __name__ == "__main__":
    main()
