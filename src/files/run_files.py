"""What a training run owns in its directories: a lock, its checkpoints (names, listing, retention, the last one)
and its log and metrics files.

A run never removes or rewrites a file another run wrote. A new run into a directory that already holds
checkpoints or logs takes the next free tag, as MindSpore's ModelCheckpoint does with prefixes:
checkpoint_bert_1-1_500.ckpt, train_log_1.txt, metrics_1.jsonl. A resumed run continues the tag of the checkpoint
it resumes from, so its retention and "last checkpoint" stay within its own files. A lock file in each directory
makes a second concurrent run refuse with one line; a lock left by a killed process is taken over.
"""
from __future__ import annotations

import atexit
import json
import os
import re
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

LOCK_NAME = ".run.lock"
CHECKPOINT_NAME = re.compile(r"^(?P<prefix>.+)-(?P<epoch>\d+)_(?P<step>\d+)\.ckpt$")
LOG_NAME, METRICS_NAME = "train_log", "metrics"


def checkpoint_step(path: Path) -> int:
    match = CHECKPOINT_NAME.match(Path(path).name)
    return int(match["step"]) if match else -1


def checkpoints_in(directory: Path, prefix: str) -> list[Path]:
    """Checkpoints named exactly {prefix}-{epoch}_{step}.ckpt in directory, oldest step first."""
    found = []
    for path in Path(directory).glob(f"{prefix}-*_*.ckpt"):
        match = CHECKPOINT_NAME.match(path.name)
        if match and match["prefix"] == prefix:
            found.append((int(match["step"]), path))
    return [path for _, path in sorted(found)]


def run_prefixes(directory: Path, prefix: str) -> set[str]:
    """The checkpoint prefixes of runs in directory: prefix itself and its tagged forms prefix_1, prefix_2, ..."""
    tagged = re.compile(rf"^{re.escape(prefix)}(_\d+)?$")
    return {match["prefix"] for path in Path(directory).glob(f"{prefix}*.ckpt")
            if (match := CHECKPOINT_NAME.match(path.name)) and tagged.match(match["prefix"])}


def latest_checkpoint(path: str | Path, prefix: str | tuple[str, ...] = "checkpoint_bert") -> Path:
    """A file as given; for a directory, the checkpoint written last by any run in it (newest file, then
    highest step), so evaluation loads what the most recent run saved, not an older run's higher step.
    prefix: the runs' checkpoint prefix, or several (any of them)."""
    path = Path(path)
    if not path.is_dir():
        if not path.is_file():
            raise FileNotFoundError(f"checkpoint {path} does not exist: pass a .ckpt file or the directory a "
                                    f"run saved into")
        return path
    prefixes = (prefix,) if isinstance(prefix, str) else prefix
    found = [ckpt for one in prefixes for run_prefix in run_prefixes(path, one)
             for ckpt in checkpoints_in(path, run_prefix)]
    if not found:
        raise FileNotFoundError(f"checkpoint directory {path} holds no {' or '.join(f'{p}-*.ckpt' for p in prefixes)}"
                                f": pass a checkpoint file or the directory a run saved into")
    return max(found, key=lambda ckpt: (ckpt.stat().st_mtime_ns, checkpoint_step(ckpt)))


def tag_of(checkpoint: Path, prefix: str) -> str | None:
    """"" or "_N" when checkpoint is one of prefix's runs' files, else None."""
    match = CHECKPOINT_NAME.match(Path(checkpoint).name)
    if not match or not re.fullmatch(rf"{re.escape(prefix)}(_\d+)?", match["prefix"]):
        return None
    return match["prefix"][len(prefix):]


def _tag_is_free(tag: str, checkpoint_dir: Path | None, prefix: str, output_dir: Path) -> bool:
    if checkpoint_dir is not None and list(Path(checkpoint_dir).glob(f"{prefix}{tag}-*.ckpt")):
        return False
    return not any((output_dir / name).exists() for name in (f"{LOG_NAME}{tag}.txt", f"{METRICS_NAME}{tag}.jsonl"))


def check_writable(directory: Path, flag: str) -> None:
    """Create directory and write a probe file in it, so a bad output place fails before training, not after."""
    directory = Path(directory)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe = directory / f".write-probe-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise ValueError(f"{flag} {directory} is not a writable directory ({error.strerror}): pass a directory "
                         f"you can write to") from None


@dataclass(frozen=True)
class RunFiles:
    """The files of one run: where its checkpoints go and under which prefix, and its log and metrics paths."""

    checkpoint_dir: Path | None
    checkpoint_prefix: str
    log: Path
    metrics: Path

    def checkpoints(self) -> list[Path]:
        return checkpoints_in(self.checkpoint_dir, self.checkpoint_prefix) if self.checkpoint_dir else []

    def trim_metrics(self, last_step: int) -> None:
        """Drop metric lines after last_step (written by the killed run after its last checkpoint), atomically,
        so a resumed run's curve has each step once."""
        if not self.metrics.is_file():
            return
        kept = []
        for line in self.metrics.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= last_step:
                    kept.append(line)
            except (ValueError, KeyError, TypeError):
                continue  # a line cut short by the kill
        partial = self.metrics.with_name(f".{self.metrics.name}.{os.getpid()}.partial")
        partial.write_text("".join(line + "\n" for line in kept), encoding="utf-8")
        os.replace(partial, self.metrics)


def plan_run_files(checkpoint_dir: Path | None, prefix: str, output_dir: Path,
                   resume_from: Path | None = None) -> RunFiles:
    """The files this run writes: a resumed run continues the tag of the checkpoint it resumes from (when that
    lies in checkpoint_dir), a new run takes the first tag that no earlier run's files use."""
    tag = None
    if resume_from is not None and checkpoint_dir is not None \
            and Path(resume_from).resolve().parent == Path(checkpoint_dir).resolve():
        tag = tag_of(resume_from, prefix)
    if tag is None:
        tag = next(t for t in ("", *(f"_{n}" for n in range(1, 10 ** 6)))
                   if _tag_is_free(t, checkpoint_dir, prefix, output_dir))
        if tag:
            print(f"note: earlier runs' files are in {output_dir}"
                  + (f" / {checkpoint_dir}" if checkpoint_dir else "")
                  + f"; this run writes {prefix}{tag}-*.ckpt, {LOG_NAME}{tag}.txt and {METRICS_NAME}{tag}.jsonl "
                    f"and leaves theirs alone", flush=True)
    return RunFiles(checkpoint_dir, f"{prefix}{tag}", output_dir / f"{LOG_NAME}{tag}.txt",
                    output_dir / f"{METRICS_NAME}{tag}.jsonl")


def _holder(lock: Path) -> tuple[int, str, str] | None:
    """(pid, host, the rest) of a lock file, None if it is unreadable."""
    try:
        pid, host, rest = (lock.read_text(encoding="utf-8").split(" ", 2) + ["", ""])[:3]
        return int(pid), host, rest.strip()
    except (OSError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether a process of this host runs under pid (a lock's or a staging directory's owner)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class DirectoryLock:
    """An exclusive lock on a run directory: the file .run.lock holds "PID HOST START COMMAND".

    Another live process's lock makes acquire() raise one line naming it; a lock whose process is gone (killed
    run) is taken over with a note. The lock is removed when the process exits normally.
    """

    def __init__(self, directory: Path) -> None:
        self.path = Path(directory) / LOCK_NAME
        self.held = False

    def acquire(self) -> DirectoryLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        content = f"{os.getpid()} {socket.gethostname()} {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(sys.argv)}"
        for _ in range(3):
            try:
                descriptor = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                holder = _holder(self.path)
                if holder and holder[0] != os.getpid() and (holder[1] != socket.gethostname() or pid_alive(holder[0])):
                    raise ValueError(f"{self.path.parent} is in use by another run (pid {holder[0]} on {holder[1]}, "
                                     f"since {holder[2].split(' ')[0]}): wait for it to end or pick another "
                                     f"directory") from None
                print(f"note: taking over {self.path} left by a run that is no longer running", flush=True)
                self.path.unlink(missing_ok=True)
                continue
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(content + "\n")
            self.held = True
            atexit.register(self.release)
            return self
        raise ValueError(f"could not lock {self.path.parent}: another run keeps taking it")

    def release(self) -> None:
        if self.held:
            holder = _holder(self.path)
            if holder and holder[0] == os.getpid():
                self.path.unlink(missing_ok=True)
            self.held = False


def lock_directories(*directories: Path | None) -> list[DirectoryLock]:
    """Lock each distinct directory (checkpoints and logs may share one)."""
    unique = dict.fromkeys(Path(d).resolve() for d in directories if d is not None)
    return [DirectoryLock(d).acquire() for d in unique]
