"""Benchmark (not a test): the probe harness's overhead, measured side by side in one run.

1. Per training step: the same script, same steps, run plainly and under the harness's hooks ("observe" mode:
   hooks installed before the script's imports, the first step recorded, the script then carries on).
2. Total probe time for the healthy classifier against the script itself importing, building and taking as
   many steps as the probe took (target: under 3x).

Run: .venv/bin/python tests/bench/bench_probe_overhead.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

from torchsanity.server.probe_runner import child_pythonpath, run_probe

TRAIN = Path(__file__).resolve().parent / "bench_train.py"


def plain(steps: int, hidden: int) -> tuple[dict, float]:
    t = time.perf_counter()
    out = subprocess.run([sys.executable, str(TRAIN), str(steps), str(hidden)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1]), time.perf_counter() - t


def observed(steps: int, hidden: int) -> tuple[dict, float]:
    tmp = tempfile.mkdtemp(prefix="torchsanity-bench-")
    try:
        env = dict(os.environ, PYTHONPATH=child_pythonpath(tmp),
                   TORCHSANITY_PROBE_CONFIG=json.dumps({"out_dir": tmp, "mode": "observe"}))
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "torchsanity.probes.child", str(TRAIN), str(steps), str(hidden)],
                             capture_output=True, text=True, env=env, check=True)
        wall = time.perf_counter() - t
        return json.loads(out.stdout.strip().splitlines()[-1]), wall
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--steps", type=int, default=150)
    args = parser.parse_args()

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start (timings on a shared machine are noisy)")
    print("1. harness overhead per training step (10th percentile of step times, best of interleaved runs)")
    print(f"   {'model':<12}{'plain step':>12}{'harness step':>14}{'ratio':>8}   {'plain 1st':>10}{'harness 1st':>12}"
          f"{'ratio':>8}")
    for hidden in (64, 256):
        p_step, h_step, p_first, h_first = [], [], [], []
        for _ in range(args.repeat):
            p, _ = plain(args.steps, hidden)
            h, _ = observed(args.steps, hidden)
            p_step.append(p["p10_step"]), h_step.append(h["p10_step"])
            p_first.append(p["first_step"]), h_first.append(h["first_step"])
        ps, hs, pf, hf = min(p_step), min(h_step), median(p_first), median(h_first)
        print(f"   {'MLP h=' + str(hidden):<12}{ps * 1e3:>10.3f}ms{hs * 1e3:>12.3f}ms{hs / ps:>8.3f}   "
              f"{pf * 1e3:>8.2f}ms{hf * 1e3:>10.2f}ms{hf / pf:>8.2f}")
    print("   (the first step is recorded op by op; later steps only pass through the patched backward/DataLoader)")

    print("\n2. total probe time, healthy classifier (all 8 checks) vs the script itself for the same steps")
    t = time.perf_counter()
    outcome = run_probe(str(TRAIN), ["100000"], timeout=600)
    probe_wall = time.perf_counter() - t
    checks = {c["id"]: c for c in outcome.report["checks"]}
    taken = 1 + sum(len(checks[c]["series"].get(k, [])) for c, k in (
        ("overfit-batch", "loss"), ("input-independence", "zeros"), ("lr-range", "loss")) if c in checks) + 2
    walls = [plain(taken, 64)[1] for _ in range(args.repeat)]
    base = median(walls)
    statuses = ", ".join(f"{c}={v['status']}" for c, v in checks.items())
    print(f"   probe: {probe_wall:.2f} s ({statuses})")
    print(f"   script alone, import + build + {taken} steps: {base:.2f} s")
    print(f"   ratio: {probe_wall / base:.2f}x  (target < 3x; the probe also starts a second process for determinism)")


if __name__ == "__main__":
    main()
