"""Atomic output directories for data preparation (text, records): all or nothing, with a manifest written last.

A tool writes into a hidden staging directory beside the output directory and renames it into place when every
file is complete; manifest.json (file list, sizes, row counts, settings) is its last file. A killed run leaves
only its staging directory, which the next run removes; a failed, stopped (SIGTERM, Ctrl-C) or disk-full run
removes it itself (staged_output). Readers refuse a directory whose files differ from its manifest. An existing
non-empty output directory is replaced only with --overwrite true.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from src.disk_space import DiskFull, disk_full_message, is_disk_full
from src.files.run_files import pid_alive
from src.preemption import Stopped

MANIFEST = "manifest.json"
_STAGING = ".{name}.partial-{pid}"


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def start_output(output_dir: str | Path, overwrite: bool, flag: str = "--output_dir") -> Path:
    """Check that output_dir may be written and return a fresh staging directory beside it.

    Staging directories of earlier runs of this tool that were killed (their process is gone) are removed.
    """
    output_dir = Path(output_dir)
    if output_dir.exists() and not output_dir.is_dir():
        raise ValueError(f"{flag} {output_dir} is a file: pass a directory")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise ValueError(f"{flag} {output_dir} is not empty: pass --overwrite true to replace it, or another {flag}")
    parent = output_dir.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise ValueError(f"{flag} {output_dir} cannot be created ({error.strerror}): pass a writable place") from None
    prefix = _STAGING.format(name=output_dir.name, pid="")
    for stale in parent.glob(f"{prefix}*"):
        pid = stale.name[len(prefix):]
        if pid.isdigit() and not pid_alive(int(pid)):
            shutil.rmtree(stale, ignore_errors=True)
    staging = parent / _STAGING.format(name=output_dir.name, pid=os.getpid())
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
    except OSError as error:
        raise ValueError(f"{flag} {output_dir}: cannot write beside it ({error.strerror}): pass a writable "
                         f"place") from None
    return staging


@contextmanager
def staged_output(output_dir: str | Path, overwrite: bool, flag: str = "--output_dir") -> Iterator[Path]:
    """start_output for a with-block that ends in finish_output: whatever stops the block (an error, a signal, a
    full disk) removes the staging directory, so nothing partial is left, and says so in its one line."""
    staging = start_output(output_dir, overwrite, flag)
    try:
        yield staging
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        untouched = f"nothing was written to {output_dir}"
        if isinstance(error, Stopped):
            raise Stopped(error.signum, f"stopped by {error.signal_name}: {untouched}; run the command again") \
                from None
        if is_disk_full(error):
            raise DiskFull(f"{disk_full_message(getattr(error, 'filename', None) or output_dir, error)}; "
                           f"{untouched}") from None
        raise


def finish_output(staging: Path, output_dir: str | Path, tool: str, settings: dict[str, Any],
                  rows: dict[str, int] | None = None) -> dict:
    """Write the manifest of every file in staging (last), then move staging into place as output_dir."""
    output_dir = Path(output_dir)
    files = {path.name: {"bytes": path.stat().st_size, "sha256": file_sha256(path),
                         **({"rows": rows[path.name]} if rows and path.name in rows else {})}
             for path in sorted(staging.iterdir()) if path.is_file()}
    manifest = {"tool": tool, "complete": True, "settings": settings, "files": files}
    (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    replaced = None
    if output_dir.is_dir() and any(output_dir.iterdir()):
        replaced = output_dir.with_name(f".{output_dir.name}.replaced-{os.getpid()}")
        os.replace(output_dir, replaced)
    elif output_dir.is_dir():
        output_dir.rmdir()
    os.replace(staging, output_dir)
    if replaced is not None:
        shutil.rmtree(replaced, ignore_errors=True)
    return manifest


def write_text_atomically(path: Path, text: str) -> Path:
    """A small output file (a result JSON) written whole or not at all: a temporary file beside it, then a rename."""
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        partial.write_text(text, encoding="utf-8")
        os.replace(partial, path)
    except BaseException as error:
        partial.unlink(missing_ok=True)
        if is_disk_full(error):
            raise DiskFull(disk_full_message(path, error)) from None
        raise
    return path


def read_manifest(directory: str | Path) -> dict | None:
    """The manifest of a directory made by a data tool, checked against the files; None where there is none.

    Raises one line naming the directory when the manifest is unreadable or a file is missing, extra or of
    another size than the manifest says (a cut copy, a file added or replaced by hand)."""
    directory = Path(directory)
    path = directory / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        listed = manifest["files"]
    except (ValueError, KeyError, TypeError):
        raise ValueError(f"{path} is not a complete manifest: re-create {directory} with the tool that made "
                         f"it") from None
    present = {p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST and not p.name.startswith(".")}
    for name in sorted(set(listed) | present):
        if name not in present:
            raise ValueError(f"{directory} lacks {name}, which its {MANIFEST} lists: the copy is incomplete; "
                             f"re-copy or re-create the directory")
        if name not in listed:
            raise ValueError(f"{directory} holds {name}, which its {MANIFEST} does not list: remove it or "
                             f"re-create the directory")
        size = (directory / name).stat().st_size
        if size != listed[name]["bytes"]:
            raise ValueError(f"{directory / name} has {size} bytes but {MANIFEST} says {listed[name]['bytes']}: "
                             f"the file was cut or changed; re-create the directory")
    return manifest
