"""Benchmark (not a test): the per-step overhead of ``torchsanity watch``, measured side by side in one run.

The same training script (tests/bench/bench_train.py: an MLP classifier with a DataLoader, timing its own steps)
runs plainly and under the watch recorder (``probes/watch.py``: backward capture, optimizer step hooks, global
gradient norm every step, per-layer statistics every K steps), interleaved, with the same step count. Target:
≤ 3 % at the default K on CPU. One thread per process (OMP_NUM_THREADS=1) for steadier timings on a shared machine.

Run: .venv/bin/python tests/bench/bench_watch_overhead.py [--repeat 5] [--steps 800]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from torchsanity.probes import WATCH_CONFIG_ENV, WATCH_EVERY
from torchsanity.server.probe_runner import _child_pythonpath

TRAIN = Path(__file__).resolve().parent / "bench_train.py"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def plain(steps: int, hidden: int) -> dict:
    out = subprocess.run([sys.executable, str(TRAIN), str(steps), str(hidden)], capture_output=True, text=True,
                         check=True, env=ENV)
    return json.loads(out.stdout.strip().splitlines()[-1])


def watched(steps: int, hidden: int, every: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="torchsanity-bench-")
    try:
        metrics = os.path.join(tmp, "metrics.jsonl")
        env = dict(ENV, PYTHONPATH=_child_pythonpath(tmp),
                   **{WATCH_CONFIG_ENV: json.dumps({"metrics": metrics, "every": every})})
        out = subprocess.run([sys.executable, "-m", "torchsanity.probes.watch", str(TRAIN), str(steps), str(hidden)],
                             capture_output=True, text=True, env=env, check=True)
        with open(metrics, encoding="utf-8") as fh:
            recorded = sum('"kind": "step"' in line for line in fh)
        assert recorded == steps, f"the recorder saw {recorded} of {steps} steps"
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--steps", type=int, default=800)
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start (timings on a shared machine are noisy)")
    print(f"per-step time, {args.steps} steps, best of {args.repeat} interleaved runs (median and 10th percentile)")
    print(f"   {'model':<12}{'K':>14}{'plain median':>14}{'watch median':>14}{'ratio':>8}{'plain p10':>12}"
          f"{'watch p10':>12}{'ratio':>8}")
    for hidden in (64, 256):
        for every in (WATCH_EVERY, 1):
            p_med, w_med, p_low, w_low = [], [], [], []
            for _ in range(args.repeat):
                p, w = plain(args.steps, hidden), watched(args.steps, hidden, every)
                p_med.append(p["median_step"]), w_med.append(w["median_step"])
                p_low.append(p["p10_step"]), w_low.append(w["p10_step"])
            pm, wm, pa, wa = min(p_med), min(w_med), min(p_low), min(w_low)
            label = f"{every} (default)" if every == WATCH_EVERY else str(every)
            print(f"   {'MLP h=' + str(hidden):<12}{label:>14}{pm * 1e3:>12.3f}ms{wm * 1e3:>12.3f}ms{wm / pm:>8.3f}"
                  f"{pa * 1e3:>10.3f}ms{wa * 1e3:>10.3f}ms{wa / pa:>8.3f}")
    print(f"   (K: per-layer statistics every K steps; K={WATCH_EVERY} is the default, K=1 the worst case)")


if __name__ == "__main__":
    main()
