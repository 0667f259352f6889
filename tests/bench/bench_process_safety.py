"""Benchmark (not a test): every signal to every parent leaves 0 processes (target).

For each parent — the probe CLI, the language server in the middle of a probe, the language server while its
analysis worker is busy — and each signal (SIGTERM, SIGHUP, SIGINT, SIGKILL), start the parent with its tree
(the probe scripts: DataLoader workers, a Popen'd `sleep`, a double-forked setsid daemon with a clean
environment), kill the parent once the tree is complete, and count the tree's processes still alive 5 s later.

Run: .venv/bin/python tests/bench/bench_process_safety.py [--scripts tree_popen.py,...] [--within 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "probes"))

from process_trees import TREE_SCRIPTS, kill_parent  # noqa: E402

SIGNALS = ("SIGTERM", "SIGHUP", "SIGINT", "SIGKILL")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scripts", default=",".join(TREE_SCRIPTS), help="comma-separated probe scripts")
    parser.add_argument("--within", type=float, default=5.0, help="seconds the tree has to die")
    args = parser.parse_args()
    scripts = [s for s in args.scripts.split(",") if s]
    rows = [("cli", s) for s in scripts] + [("server", s) for s in scripts] + [("worker", "")]
    started = time.monotonic()
    total = 0
    print(f"survivors {args.within:.0f} s after the parent died / processes in the tree (target: 0 survivors)")
    print(f"{'parent':<8} {'tree':<20}" + "".join(f"{s:>10}" for s in SIGNALS))
    for parent, script in rows:
        cells = []
        for signame in SIGNALS:
            outcome = kill_parent(parent, signame, script or "tree_popen.py", within=args.within)
            total += len(outcome.survivors)
            cells.append(f"{len(outcome.survivors)}/{len(outcome.tree)}")
        label = script.removesuffix(".py") if script else "busy analysis"
        print(f"{parent:<8} {label:<20}" + "".join(f"{c:>10}" for c in cells), flush=True)
    print(f"total survivors: {total} (target 0); {len(rows) * len(SIGNALS)} kills in "
          f"{time.monotonic() - started:.0f} s")
    return 0 if total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
