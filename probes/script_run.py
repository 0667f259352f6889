"""What a child process that runs the user's script needs, shared by the probe's child and the watch: tying
itself to the guard, the script's own traceback, and telling an out-of-memory error."""

from __future__ import annotations

import os
import traceback

from .guard import GUARD_ENV
from .lifeline import die_with_parent

_HERE = os.path.dirname(os.path.abspath(__file__))


def is_oom(exc: BaseException) -> bool:
    """True for the ways Python, torch and the allocator say they ran out of memory."""
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or \
        "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text


def user_traceback(exc: BaseException) -> str:
    """The script's traceback without the harness's own frames."""
    here = os.path.realpath(_HERE)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.realpath(f.filename).startswith(here) and "runpy" not in f.filename]
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


def tie_to_guard() -> None:
    """Die (SIGKILL) with the guard that started us — or with torchrun, under the guard — and end at once if the
    guard is already gone. The guard ends the rest of the tree."""
    guard = os.environ.get(GUARD_ENV, "").partition(":")[0]
    if not guard.isdigit() or die_with_parent(int(guard)):
        return
    try:
        os.kill(int(guard), 0)  # alive: we run under torchrun, and are tied to it
    except OSError:
        os._exit(1)
