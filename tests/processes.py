"""Tests' commands in a subprocess, waited on by event (a line they print), never by time."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Callable

#: Seconds after which a command that never prints the awaited line is killed: a guard against
#: a hang only, never a duration the test expects (a busy machine may take far longer than a quiet one).
HANG_GUARD = 900

_PROGRESS = re.compile(r"^training: ([0-9]+)/([0-9]+) ")
_PARTWAY = "a pack partway)"


def _default_sigint() -> None:
    """In the child, before exec: SIGINT to its default, so Python installs its own handler.

    A process started in the background by a non-interactive shell (``cmd &``, ``nohup``)
    inherits SIGINT *ignored*, and Python then leaves it ignored: a test run from such a shell
    sent its Ctrl-C into nothing and the command trained to the end (exit 0).
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _argv(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "topowire.cli", *args]


def run(args: list[str]) -> subprocess.CompletedProcess:
    """``python -m topowire.cli ARGS`` to its end, its output captured as text (hang guarded)."""
    return subprocess.run(_argv(args), capture_output=True, text=True, timeout=HANG_GUARD)


def topowire(args: list[str], **popen) -> subprocess.Popen:
    """``python -m topowire.cli ARGS`` in a subprocess, Ctrl-C-able, its stdout and stderr
    together one text pipe (``proc.stdout``; read it to the end, or the command may block)."""
    return subprocess.Popen(_argv(args), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=_default_sigint, **popen)


def wait_for_line(proc: subprocess.Popen, event: Callable[[str], bool]) -> str:
    """Read ``proc``'s output until a line for which ``event`` holds, and return it.

    AssertionError, with what was read, when the process ends (or is killed by the hang
    guard) first.
    """
    guard = threading.Timer(HANG_GUARD, proc.kill)
    guard.start()
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if event(line):
                return line
    finally:
        guard.cancel()
    raise AssertionError(f"the command ended (status {proc.wait()}) before the awaited line; it printed:\n"
                         + "".join(seen))


def trained(at_least: int) -> Callable[[str], bool]:
    """An event for :func:`wait_for_line`: at least ``at_least`` models are in the store.

    Train prints ``training: DONE/TOTAL (RATE/s)`` once a pack's rows are stored; while a
    pack trains, the line ends ``a pack partway)`` (:func:`in_training`).
    """
    def event(line: str) -> bool:
        match = _PROGRESS.match(line)
        return bool(match) and _PARTWAY not in line and int(match[1]) >= at_least
    return event


def in_training(line: str) -> bool:
    """An event for :func:`wait_for_line`: a pack is training (its claim held), part done."""
    return bool(_PROGRESS.match(line)) and _PARTWAY in line
