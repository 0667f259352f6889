"""Helpers shared by the watch tests (imported as ``watch_helpers``, like ``tests/server/lsp_helpers.py``)."""

from __future__ import annotations

import os


def processes_with(variable: str, token: str) -> list[int]:
    """The live processes whose environment holds ``variable=token`` (read from ``/proc``)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if f"{variable}={token}".encode() in fh.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            continue
    return found
