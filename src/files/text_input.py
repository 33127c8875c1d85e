"""The one reader of every text input: corpus text, vocab.txt, task files, SQuAD json, predict.py's input file
and standard input.

Why one: each reader used to open and decode on its own, and they disagreed. A UTF-8 byte-order mark stayed in
the text (predict.py tagged it as a PER entity at offset 0; a task file's first label or JSON line, a vocab's first
token, a TSV header broke), line ends were read three ways, and a file that is not UTF-8 was reported with or
without its line and byte. Every text input now goes through read_text or text_lines:

- UTF-8, with a leading byte-order mark dropped (Windows editors write one);
- lines end at "\\n" or "\\r\\n", and the last line may end at "\\r"; an input without any "\\n" but with '\\r'
  (classic Mac line ends) is split at '\\r'. Only the line end is removed: a '\\r' inside a line, NUL and every
  other control character stay in the text for the tokenizer, which treats them as Google's does (drops them, or
  reads '\\r' and tab as white space), so offsets into a line index the text as given;
- .gz and .xz files are decompressed;
- a missing file, bytes that are not UTF-8, or a broken .gz/.xz file raise one line (ValueError / OSError, which
  src/cli.py prints) naming the file, line and byte offset, and the fix.
"""
from __future__ import annotations

import contextlib
import gzip
import lzma
import sys
import zlib
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

STDIN = "-"
UTF8_BOM = b"\xef\xbb\xbf"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")
_OPENERS = {".gz": gzip.open, ".xz": lzma.open}
_BROKEN_ARCHIVE = (EOFError, lzma.LZMAError, gzip.BadGzipFile, zlib.error)


def source_name(path: str | Path) -> str:
    """How messages name an input: its path, or "standard input" for "-"."""
    return "standard input" if str(path) == STDIN else str(path)


def read_text(path: str | Path, what: str = "input file", fix: str = "check the path",
              fallback_encoding: str | None = None) -> str:
    """The whole text of a file ("-": standard input), the BOM dropped and "\\r\\n" read as "\\n".

    fallback_encoding: decode with it what is not UTF-8 (the MSRA XML release is GB18030) instead of refusing."""
    with _binary(path, what, fix) as handle:
        raw = _read_all(handle, path)
    body = raw[len(UTF8_BOM):] if raw.startswith(UTF8_BOM) else raw
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        position = len(raw) - len(body) + error.start
        number = raw.count(b"\n", 0, position) + 1
        line_start = raw.rfind(b"\n", 0, position) + 1
        if fallback_encoding is None:
            raise ValueError(_not_utf8(source_name(path), number, raw[line_start:line_start + 2], raw[position],
                                       position)) from None
        try:
            text = raw.decode(fallback_encoding).removeprefix("\ufeff")
        except UnicodeDecodeError:
            raise ValueError(f"{source_name(path)}:{number} is neither UTF-8 nor {fallback_encoding.upper()} text "
                             f"(byte 0x{raw[position]:02x} at offset {position}): convert it to UTF-8") from None
    return text.replace("\r\n", "\n")


def text_lines(path: str | Path, what: str = "input file", fix: str = "check the path") -> Iterator[tuple[int, str]]:
    """(line number from 1, line without its line end) of a file or, for "-", standard input; streamed."""
    with _binary(path, what, fix) as handle:
        try:
            yield from _decode_lines(handle, source_name(path))
        except _BROKEN_ARCHIVE as error:
            raise ValueError(_broken(path, error)) from None


def _decode_lines(raw_lines: Iterable[bytes], name: str) -> Iterator[tuple[int, str]]:
    """text_lines on lines of bytes (each with its b"\\n" but the last); name: the input in messages."""
    offset = 0
    for number, raw in enumerate(raw_lines, 1):
        skip = len(UTF8_BOM) if number == 1 and raw.startswith(UTF8_BOM) else 0
        try:
            line = (raw[skip:] if skip else raw).decode("utf-8")
        except UnicodeDecodeError as error:
            raise ValueError(_not_utf8(name, number, raw if number == 1 else b"", raw[skip + error.start],
                                       offset + skip + error.start)) from None
        offset += len(raw)
        if line.endswith("\n"):
            line = line[:-2] if line.endswith("\r\n") else line[:-1]
        elif number == 1 and "\r" in line[:-1]:  # the whole input is one line: its line ends are '\r'
            pieces = line.split("\r")
            yield from enumerate(pieces[:-1] if pieces[-1] == "" else pieces, 1)
            return
        elif line.endswith("\r"):  # the last line, ended by '\r' alone
            line = line[:-1]
        yield number, line


def leading_bytes(path: str | Path, what: str = "input file", fix: str = "check the path", size: int = 64) -> bytes:
    """The first bytes of a file after its BOM, undecoded (to tell a format by them before knowing the encoding)."""
    with _binary(path, what, fix) as handle:
        try:
            head = handle.read(size + len(UTF8_BOM))
        except _BROKEN_ARCHIVE as error:
            raise ValueError(_broken(path, error)) from None
    return head.removeprefix(UTF8_BOM)[:size]


@contextlib.contextmanager
def _binary(path: str | Path, what: str, fix: str) -> Iterator[BinaryIO]:
    """The input's bytes: standard input, or the file (decompressed when it ends in .gz or .xz)."""
    if str(path) == STDIN:
        stream = sys.stdin
        # a text stream without bytes underneath (a test's StringIO) is read as the UTF-8 it decodes to
        yield getattr(stream, "buffer", None) or (line.encode("utf-8", "surrogateescape") for line in stream)
        return
    file = Path(path)
    if file.is_dir():
        raise IsADirectoryError(f"{what} {file} is a directory, not a file: {fix}")
    if not file.is_file():
        raise FileNotFoundError(f"{what} {file} does not exist: {fix}")
    with _OPENERS.get(file.suffix, open)(file, "rb") as handle:
        yield handle


def _read_all(handle: BinaryIO | Iterable[bytes], path: str | Path) -> bytes:
    try:
        return handle.read() if hasattr(handle, "read") else b"".join(handle)
    except _BROKEN_ARCHIVE as error:
        raise ValueError(_broken(path, error)) from None


def _broken(path: str | Path, error: BaseException) -> str:
    reason = str(error) or type(error).__name__
    return f"{source_name(path)} is not a readable {Path(path).suffix} file ({reason}): pass it as shipped"


def _not_utf8(name: str, number: int, line_head: bytes, byte: int, offset: int) -> str:
    """The one-line message for the first byte that is not UTF-8 (line number, byte, offset into the input) and
    the iconv command that converts it: from UTF-16 when the input starts with its byte-order mark, else GB18030
    (the usual encoding of Chinese text that is not UTF-8)."""
    encoding = "UTF-16" if number == 1 and line_head[:2] in _UTF16_BOMS else "GB18030"
    return (f"{name}:{number} is not UTF-8 text (byte 0x{byte:02x} at offset {offset}): convert it with "
            f"iconv -f {encoding} -t UTF-8 (or from its real encoding)")

