"""One error policy for every entry script and tool.

Expected failures (bad flags, files, data and configs, and the MindSpore runtime errors that bad data causes)
end the program with one line on stderr, `<script>: <what is wrong and the fix>`, and a non-zero exit status;
the library raises them as ValueError / OSError with a message that names the input. An unexpected error (a bug)
also ends in one line. `--debug` on any command line, or BERT_DEBUG=1 in the environment, shows the full Python
trace (and MindSpore's C++ stack) instead. SIGTERM and Ctrl-C end it with one line too, and the shell's status for
the signal (src/preemption.py).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

from src.disk_space import disk_full_message, is_disk_full
from src.preemption import Stopped, handling_signals

DEBUG_FLAG = "--debug"
DEBUG_ENV = "BERT_DEBUG"
GRAPH_DUMPS = "rank_*/om/analyze_fail.ir"
EXPECTED = (ValueError, OSError, FloatingPointError, RuntimeError)  # RuntimeError: MindSpore's C++ errors

Result = TypeVar("Result")

# MindSpore's error texts carry section banners and stacks after the message proper.
_NOISE_PREFIXES = ("---", "- C++ Call Stack", "- The Traceback", "- Kernel select failed", "- Dataset Pipeline",
                   "(See file", "Refer to", "Exception thrown from dataset pipeline")
_STACK_START = ("- C++ Call Stack", "- The Traceback of Net Construct Code", "- Framework Unexpected Exception")


def one_line(error: BaseException) -> str:
    """The message of error as one line: the first informative line of a MindSpore error, without its banners
    and C++ stack; a Python error's message as it is (joined onto one line)."""
    lines: list[str] = []
    for raw in str(error).splitlines():
        line = raw.strip()
        if line.startswith(_STACK_START):
            break
        if line and not line.startswith(_NOISE_PREFIXES):
            lines.append(line.removeprefix("[ERROR] ").strip())
    if not lines:
        return type(error).__name__
    # "Syntax error." / "Unexpected error." headers precede the real message in dataset errors.
    informative = [line for line in lines if line.rstrip(".").lower() not in ("syntax error", "unexpected error")]
    return " ".join((informative or lines)[:2])


def debug_requested(argv: list[str]) -> bool:
    return DEBUG_FLAG in argv or os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")


@contextmanager
def graph_dumps_kept_out_of_the_working_directory(debug: bool) -> Iterator[None]:
    """MindSpore writes rank_N/om/analyze_fail.ir into the working directory when a graph fails to compile,
    whatever MS_DEV_SAVE_GRAPHS_PATH says (measured, 2.10); remove what this program added there. With --debug
    they stay, for the report."""
    before = set(Path.cwd().glob(GRAPH_DUMPS)) | set(Path.cwd().glob("rank_*"))
    try:
        yield
    finally:
        if not debug:
            for path in sorted(set(Path.cwd().glob(GRAPH_DUMPS)) - before, reverse=True):
                with contextlib.suppress(OSError):
                    path.unlink() if path.is_file() else path.rmdir()
            for directory in sorted(set(Path.cwd().glob("rank_*")) - before, reverse=True):
                with contextlib.suppress(OSError):
                    for sub in sorted(directory.rglob("*"), reverse=True):
                        sub.rmdir()  # only empty folders: anything else in them was not MindSpore's dump
                    directory.rmdir()


def run_cli(script: str, main: Callable[[list[str]], Result], argv: list[str] | None = None) -> Result:
    """Run main(argv) under the error policy; argv defaults to the command line, without --debug."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = debug_requested(argv)
    argv = [arg for arg in argv if arg != DEBUG_FLAG]
    with handling_signals(), graph_dumps_kept_out_of_the_working_directory(debug):
        if debug:
            os.environ[DEBUG_ENV] = "1"  # child processes (workers, launchers) inherit it
            return main(argv)
        try:
            return main(argv)
        except SystemExit as stop:
            if isinstance(stop.code, str) and not stop.code.startswith(f"{script}:"):
                raise SystemExit(f"{script}: {stop.code}") from None
            raise
        except (Stopped, KeyboardInterrupt) as stop:
            stopped = stop if isinstance(stop, Stopped) else Stopped(signal.SIGINT)
            print(f"{script}: {stopped}", file=sys.stderr, flush=True)
            raise SystemExit(stopped.exit_status) from None
        except OSError as error:
            if is_disk_full(error):
                raise SystemExit(f"{script}: {disk_full_message(error.filename or '', error)}") from None
            raise SystemExit(f"{script}: {one_line(error)}") from None
        except EXPECTED as error:
            raise SystemExit(f"{script}: {one_line(error)}") from None
        except Exception as error:  # a bug: still one line, the trace behind --debug
            raise SystemExit(f"{script}: internal error ({type(error).__name__}: {one_line(error)}); rerun with "
                             f"{DEBUG_FLAG} for the trace and report it") from None


class ArgumentParser(argparse.ArgumentParser):
    """argparse with a one-line error (argparse prints the whole usage block before it)."""

    def error(self, message: str) -> None:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def check_minimums(args: argparse.Namespace, **minimums: float) -> None:
    """One line for the first flag below its minimum (e.g. --train_steps 0 would silently mean something else)."""
    for name, minimum in minimums.items():
        value = getattr(args, name)
        if value < minimum:
            raise ValueError(f"--{name} {value} is out of range: pass a value of at least {minimum}")
