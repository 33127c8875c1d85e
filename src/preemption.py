"""SIGTERM and SIGINT (Ctrl-C) stop a program without losing or half-writing anything.

Clusters (Slurm, Kubernetes, ModelArts) stop a job with SIGTERM and a grace period; users press Ctrl-C. Inside a
training loop (`deferred`) the first signal is only recorded: the loop finishes the step in flight, saves a
checkpoint and raises Stopped. Anywhere else, or on a second signal, Stopped is raised at once, so every
`finally` and staging clean-up still runs. src/cli.run_cli installs the handler and turns Stopped into one line and
the shell's status for the signal (143 for SIGTERM, 130 for SIGINT).

While MindSpore runs a step, its runtime holds SIGINT itself and answers Ctrl-C by sending the process SIGTERM
(mindspore::DefaultIntHandler): then the line names both.
"""
from __future__ import annotations

import ctypes
import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class Stopped(BaseException):
    """The program was asked to stop by a signal (a BaseException, as KeyboardInterrupt: `except Exception`
    clauses let it through)."""

    def __init__(self, signum: int, message: str = "", native_sigint: bool = False) -> None:
        self.signum = signum
        self.signal_name = signal.Signals(signum).name
        if native_sigint and signum == signal.SIGTERM:
            self.signal_name = "SIGTERM (or Ctrl-C, which MindSpore re-sends as SIGTERM during a step)"
        super().__init__(message or f"stopped by {self.signal_name}")

    @property
    def exit_status(self) -> int:
        return 128 + self.signum


class StopHandler:
    """The process's handler for SIGTERM and SIGINT; a run's code finds it with `current()`."""

    def __init__(self) -> None:
        self.received: int | None = None  # the first signal, once one came
        self.native_sigint = False  # whether native code held SIGINT when it came
        self.deferring = 0  # depth of `deferred` blocks
        self.python_handler = 0  # CPython's C-level handler, once installed

    def install(self) -> None:
        """Install this handler for both signals and note CPython's C-level handler, to tell later whether native
        code (MindSpore's runtime, during a step) holds SIGINT."""
        for signum in SIGNALS:
            signal.signal(signum, self)
        self.python_handler = _native_handler(signal.SIGTERM)

    def stopped(self, message: str = "") -> Stopped:
        return Stopped(self.received or signal.SIGTERM, message, self.native_sigint)

    def __call__(self, signum: int, frame) -> None:
        first = self.received is None
        if first:
            self.received = signum
            self.native_sigint = _native_handler(signal.SIGINT) not in (0, self.python_handler)
        if not first or not self.deferring:
            raise Stopped(signum, native_sigint=self.native_sigint)


def _native_handler(signum: int) -> int:
    """The address of the C-level handler of signum (glibc's struct sigaction starts with it); 0 if unknown."""
    try:
        action = ctypes.create_string_buffer(256)
        if ctypes.CDLL(None).sigaction(signum, None, action) != 0:
            return 0
        return ctypes.c_void_p.from_buffer(action).value or 0
    except (OSError, AttributeError):
        return 0


def current() -> StopHandler | None:
    handler = signal.getsignal(signal.SIGTERM)
    return handler if isinstance(handler, StopHandler) else None


@contextmanager
def handling_signals() -> Iterator[StopHandler | None]:
    """Install a StopHandler for the block (main thread only; elsewhere Python cannot), restoring the previous
    handlers after it."""
    if threading.current_thread() is not threading.main_thread():
        yield None
        return
    handler = StopHandler()
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}
    handler.install()
    try:
        yield handler
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


@contextmanager
def deferred() -> Iterator[StopHandler | None]:
    """A block in which a first signal is recorded (handler.received) instead of raised: the training loop looks
    at it between steps."""
    handler = current()
    if handler is None:
        yield None
        return
    handler.deferring += 1
    try:
        yield handler
    finally:
        handler.deferring -= 1


def worker_ignores_signals() -> None:
    """Pool initializer: a worker process leaves both signals to its parent, which stops the pool (Ctrl-C reaches
    the whole process group; a worker's own trace would only add noise)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
