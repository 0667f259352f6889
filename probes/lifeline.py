"""Tie processes to their parent's life and end whole process trees (Linux; the watchdog pipe is POSIX).

- :func:`die_with_parent`: a parent-death signal (``prctl(PR_SET_PDEATHSIG)``), then a check that the parent
  is still the expected one, which closes the race between ``fork`` and the ``prctl``;
- :func:`watch_parent`: a thread that sees end-of-file on a pipe whose write end only the parent holds, so
  it notices the parent's death however it died (``SIGKILL`` included);
- :func:`become_subreaper`: orphaned descendants (double-forked daemons) are re-parented to this process,
  not to init, so they stay in its tree;
- :func:`end_processes`: ``SIGTERM``, a short grace, then ``SIGKILL``, until nothing is left — the set of
  processes is found again on every round (the tree, a process group, or a marker in the environment).

Standard library only: this runs in the user's interpreter.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from typing import Callable, Iterable

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36


def _prctl(option: int, value: int) -> bool:
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(option, ctypes.c_ulong(value), ctypes.c_ulong(0), ctypes.c_ulong(0),
                          ctypes.c_ulong(0)) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(expected_parent: int, sig: int | None = None) -> bool:
    """Have the kernel send ``sig`` (default SIGKILL) to this process when its parent exits. False when the
    parent is no longer ``expected_parent`` (it died before the request took effect): the caller should end
    itself."""
    _prctl(_PR_SET_PDEATHSIG, int(sig if sig is not None else getattr(signal, "SIGKILL", 9)))
    return os.getppid() == expected_parent


def become_subreaper() -> bool:
    """Orphaned descendants are re-parented to this process instead of init (Linux ≥ 3.4)."""
    return _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def watch_parent(fd: int, on_gone: Callable[[], None]) -> threading.Thread:
    """Call ``on_gone`` (on a daemon thread) once the pipe ``fd`` reads end-of-file: its write end, held only
    by the parent, closed — the parent exited or was killed."""

    def wait() -> None:
        while True:
            try:
                if not os.read(fd, 4096):
                    break
            except InterruptedError:
                continue
            except OSError:
                break
        on_gone()

    thread = threading.Thread(target=wait, name="torchsanity-lifeline", daemon=True)
    thread.start()
    return thread


# -- the process table ---------------------------------------------------------------------------------------
def process_table() -> dict[int, tuple[int, int, str]]:
    """Every process: pid -> (parent pid, process group, state letter)."""
    table: dict[int, tuple[int, int, str]] = {}
    try:
        names = os.listdir("/proc")
    except OSError:
        return table
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            fields = stat[stat.rindex(")") + 2:].split()
            table[int(name)] = (int(fields[1]), int(fields[2]), fields[0])
        except (OSError, ValueError, IndexError):
            continue
    return table


def carrying(name: str, value: str, table: dict | None = None) -> set[int]:
    """Live processes whose environment holds ``name=value`` (inherited by everything a process starts,
    ``setsid`` daemons included, unless they replace their environment)."""
    needle = f"{name}={value}".encode()
    table = process_table() if table is None else table
    found = set()
    for pid, (_, _, state) in table.items():
        if state in "ZX":
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    found.add(pid)
        except OSError:
            continue
    return found


def tree(roots: Iterable[int], groups: Iterable[int] = (), marker: tuple[str, str] | None = None) -> set[int]:
    """Live processes in the trees under ``roots`` (roots included), in the process ``groups``, or carrying
    the environment ``marker``; never the calling process."""
    table = process_table()
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    found: set[int] = set()
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid not in found:
            found.add(pid)
            stack.extend(children.get(pid, []))
    wanted = set(groups)
    found.update(pid for pid, (_, pgid, _) in table.items() if pgid in wanted)
    found = {pid for pid in found if table[pid][2] not in "ZX"}
    if marker is not None:
        found |= carrying(*marker, table)
    found.discard(os.getpid())
    return found


def end_processes(find: Callable[[], set[int]], grace: float = 2.0, reap: Callable[[], None] | None = None,
                  patience: float = 5.0) -> set[int]:
    """SIGTERM every process ``find`` returns, SIGKILL whatever is left after ``grace`` seconds; ``find`` runs
    again each round, so processes started meanwhile are caught too. Returns what survived ``patience`` more
    seconds (normally nothing)."""
    deadline = time.monotonic() + grace
    hard = False
    signalled: set[int] = set()
    while True:
        if reap is not None:
            reap()
        pids = find()
        if not pids:
            return set()
        now = time.monotonic()
        if not hard and now >= deadline:
            hard, deadline = True, now + patience
            signalled.clear()
        elif hard and now >= deadline:
            return pids
        for pid in pids - signalled if not hard else pids:
            try:
                os.kill(pid, signal.SIGKILL if hard else signal.SIGTERM)
            except OSError:
                pass
        signalled |= pids
        time.sleep(0.05)
