"""Following training that a script hands to ``torch.multiprocessing`` workers.

``mp.spawn(fn, args, nprocs)`` / ``start_processes`` start fresh interpreters the hooks do not reach, so the probe
runs the first worker itself: ``fn(0, *args)`` in this process, as rank 0 of a world of one
(``torch.distributed.init_process_group`` gets ``rank=0, world_size=1`` and a free local port; ``RANK`` /
``WORLD_SIZE`` / ``LOCAL_RANK`` say the same while it runs). Its first training step is probed like any other.

Workers started with ``multiprocessing.Process`` (the Hogwild examples) are forked with the hooks in place: the
first worker the script started runs the checks at its first training step and writes its report
(``worker_report_path``), which the main process adopts when the script ends (``adopt_worker_report``); the
other workers end at their first training step.
"""

from __future__ import annotations

import json
import os
from typing import Any, Callable

_DIST_ENV = {"RANK": "0", "LOCAL_RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}


class _Joined:
    """What ``spawn(..., join=False)`` returns, for a worker that already ran: ``join()`` is done at once."""

    def __init__(self) -> None:
        self.processes: list = []

    def join(self, timeout: float | None = None) -> bool:
        return True

    def pids(self) -> list[int]:
        return [os.getpid()]


def spawn_args(args: tuple, kwargs: dict) -> tuple[Callable, tuple, int, bool]:
    """(fn, args, nprocs, join) of a ``spawn`` / ``start_processes`` call."""
    params = ["fn", "args", "nprocs", "join"]
    values = dict(zip(params, args))
    values.update({k: v for k, v in kwargs.items() if k in params})
    return values["fn"], tuple(values.get("args", ())), int(values.get("nprocs", 1)), bool(values.get("join", True))


def run_first_worker(fn: Callable, args: tuple, join: bool) -> Any:
    """Run ``fn(0, *args)`` here as the only rank; what ``spawn`` would have returned."""
    import torch.distributed as dist

    original = getattr(dist, "init_process_group", None)

    def init_process_group(*a: Any, **kw: Any) -> Any:
        names = ["backend", "init_method", "timeout", "world_size", "rank"]
        bound = dict(zip(names, a))
        bound.update(kw)
        bound["world_size"], bound["rank"] = 1, 0
        # a world of one meets only itself: a free local port, not the script's fixed one (the determinism run
        # probes the same script at the same time)
        bound["init_method"] = None
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = "127.0.0.1", str(_free_port())
        return original(**{k: v for k, v in bound.items() if v is not None})

    saved_env = {k: os.environ.get(k) for k in _DIST_ENV}
    os.environ.update(_DIST_ENV)
    if original is not None:
        dist.init_process_group = init_process_group
    try:
        fn(0, *args)
    finally:
        if original is not None:
            dist.init_process_group = original
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return None if join else _Joined()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def worker_report_path(out_dir: str, tag: str, rank: int) -> str:
    """Where a followed worker writes its report."""
    return os.path.join(out_dir, f"worker-{tag}-{rank}.json")


def adopt_worker_report(out_dir: str, tag: str, rank: int, site: tuple[str, int]) -> dict | None:
    """The report a followed worker wrote (final, else partial), or None when no worker reached a training step."""
    path = worker_report_path(out_dir, tag, rank)
    for candidate in (path, path + ".partial"):
        try:
            with open(candidate, encoding="utf-8") as fh:
                report = json.load(fh)
        except (OSError, ValueError):
            continue
        if candidate != path:
            report.setdefault("notes", []).append(f"the worker started at line {site[1]} ended before it finished "
                                                  "its checks; the checks it finished are kept")
        return report
    return None
