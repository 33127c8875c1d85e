"""A full disk, said in one line: the file, the space it needed and the space free, checked before writing where
the size is known (a checkpoint is as large as the train cell's parameters)."""
from __future__ import annotations

import errno
import shutil
from pathlib import Path

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


class DiskFull(ValueError):
    """A write the disk could not hold (src/cli.py prints it as its one line)."""


def is_disk_full(error: BaseException) -> bool:
    return isinstance(error, OSError) and error.errno in DISK_FULL


def free_bytes(path: str | Path) -> int | None:
    """Free bytes on the filesystem that holds path (or its nearest existing parent); None if unknown."""
    path = Path(path)
    for place in (path, *path.parents):
        if place.exists():
            try:
                return shutil.disk_usage(place).free
            except OSError:
                return None
    return None


def megabytes(size: int) -> str:
    return f"{size / 2 ** 20:,.1f} MB"


def disk_full_message(path: str | Path, error: BaseException | None = None, needed: int | None = None) -> str:
    """`no space left on device writing PATH (needs N MB, M MB free)`, the fix after it."""
    path = Path(path)
    free = free_bytes(path.parent if str(path) else Path("."))
    sizes = [f"needs {megabytes(needed)}" if needed is not None else "",
             f"{megabytes(free)} free" if free is not None else ""]
    sizes_text = ", ".join(size for size in sizes if size)
    reason = "disk quota exceeded" if error is not None and getattr(error, "errno", None) == errno.EDQUOT \
        else "no space left on device"
    return (f"{reason} writing {path or 'a file'}{f' ({sizes_text})' if sizes_text else ''}: free space there or "
            f"write to another place")


def check_free_space(path: str | Path, needed: int) -> None:
    """Raise DiskFull before writing `needed` bytes at path when its filesystem has less free."""
    path = Path(path)
    free = free_bytes(path.parent)
    if free is not None and free < needed:
        raise DiskFull(disk_full_message(path, needed=needed))
