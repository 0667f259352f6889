"""Benchmark (not a test): the per-step overhead of ``torchsanity watch``, measured side by side in one run.

The same training script (tests/watch/scripts/bench_cnn_train.py: a small CNN on CIFAR-sized images with a
DataLoader and a validation pass per epoch, timing its own steps; a step takes tens of milliseconds on one CPU
thread, so fixed per-step costs do not dominate as they would on a tiny MLP) runs plainly and under the watch
recorder (``probes/watch.py``: backward capture, optimizer step hooks, DataLoader timing, loss-function and
``train()`` hooks, the global gradient norm, per-layer statistics and activation hooks every K steps, the metrics
file written as it goes), with the same step count. Target: <= 3 % at the default K on CPU.

Fairness: plain and watched runs are interleaved (AB BA AB ...: each pair starts with the other side, so a drift in
the machine's load falls on both), with one thread per process (OMP_NUM_THREADS=1) on both sides, and the figure is
the median of the per-pair ratios (least exposed to load that changes between pairs), in CPU time rather than
wall time (the time other processes take on a busy machine left out): per step, each run's median step in the CPU
time of the training thread (``time.thread_time``; the recorder does all its work in that thread, so none of its
cost is hidden; each run's first step — warm-up, and under the watch the hooks' set-up — left out on both sides);
and for the whole child process, its CPU time (``time.process_time``, all its threads) from its start to the end of
training (start-up included — importing and installing the recorder on the watched side —, so an upper bound;
the interpreter's exit left out: the watch child skips it with ``os._exit``, which would flatter the watched side).
Wall time is printed for comparison.

A second measurement runs both sides in one process, the recorder installed for every other block of 10 steps
(sampled steps included, every K of the watched ones; the metrics written to a real file), so that both see the
same load at nearly the same moments (what a busy shared machine needs): the median of the ratios of adjacent
blocks. Last, one watched run in process with a clock around each of the recorder's hooks says where the time
goes.

Run: .venv/bin/python tests/bench/bench_watch_overhead.py [--pairs 8] [--steps 150] [--width 16] [--worst]
     [--blocks 30]
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

TRAIN = Path(__file__).resolve().parents[1] / "watch" / "scripts" / "bench_cnn_train.py"
ENV = dict(os.environ, OMP_NUM_THREADS="1")
STATS = ("median_step", "mean_step", "p10_step", "cpu_median_step", "cpu_mean_step", "cpu_p10_step", "process_cpu")


def _child(command: list[str], env: dict) -> dict:
    """Run one child to its end: the JSON line the training script printed last."""
    out = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def plain(steps: int, width: int) -> dict:
    return _child([sys.executable, str(TRAIN), str(steps), str(width)], ENV)


def watched(steps: int, width: int, every: int) -> dict:
    tmp = tempfile.mkdtemp(prefix="torchsanity-bench-")
    try:
        metrics = os.path.join(tmp, "metrics.jsonl")
        env = dict(ENV, **{WATCH_CONFIG_ENV: json.dumps({"metrics": metrics, "every": every})})
        result = _child([sys.executable, "-m", "torchsanity.probes.watch", str(TRAIN), str(steps), str(width)], env)
        with open(metrics, encoding="utf-8") as fh:
            records = [json.loads(line) for line in fh]
        recorded = sum(r["kind"] == "step" for r in records)
        assert recorded == steps, f"the recorder saw {recorded} of {steps} steps"
        assert any(r["kind"] == "activations" for r in records) or steps < every
        return result
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


_ALTERNATE = """
import json, os, sys
sys.path.insert(0, {scripts!r})
import bench_cnn_train as bench
from torchsanity.probes.watch_hooks import WatchRecorder
parts = bench.build({width})
recorder = WatchRecorder(open({metrics!r}, "w", encoding="utf-8"), every={every})
bench.train(parts, 10)  # warm-up
times = {{"plain": [], "watched": [], "plain_cpu": [], "watched_cpu": []}}

def block(side):  # each block's first step (a new pass over the loader) left out
    cpu = []
    times[side] += bench.train(parts, {block}, cpu)[1:]
    times[side + "_cpu"] += cpu[1:]

for i in range({blocks}):  # the blocks alternate AB BA ...
    if i % 2:
        block("plain")
    recorder.install()
    block("watched")
    recorder.uninstall()
    if not i % 2:
        block("plain")
recorder.flush()
print(json.dumps(dict(times, steps=recorder.step)))
"""


def alternating(blocks: int, block: int, width: int, every: int) -> dict[str, list[float]]:
    """One process, the recorder installed for every other block of steps: both sides share the process, its
    caches and the machine's load at nearly the same moments."""
    tmp = tempfile.mkdtemp(prefix="torchsanity-bench-")
    try:
        code = _ALTERNATE.format(scripts=str(TRAIN.parent), width=width, every=every, blocks=blocks, block=block,
                                 metrics=os.path.join(tmp, "metrics.jsonl"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["steps"] == blocks * block, result["steps"]
    return result


_BREAKDOWN = """
import json, os, sys, time
sys.path.insert(0, {scripts!r})
import bench_cnn_train as bench
from torchsanity.probes.watch_hooks import WatchRecorder
parts = bench.build({width})
recorder = WatchRecorder(open({metrics!r}, "w", encoding="utf-8"), every={every})
spent = {{}}

def timed(name, fn):
    def inner(*args, **kwargs):
        started = time.thread_time_ns()  # CPU time: the machine's other load left out
        try:
            return fn(*args, **kwargs)
        finally:
            spent.setdefault(name, []).append(time.thread_time_ns() - started)
    return inner

for name in ("pre_step", "post_step", "on_batch", "on_root_forward", "on_mode", "on_pass", "on_eval_loss", "flush"):
    setattr(recorder, name, timed(name, getattr(recorder, name)))
hook = recorder.sampler._hook
recorder.sampler._hook = lambda module: timed("activation hooks", hook(module))
recorder.install()
cpu = []
bench.train(parts, {steps}, cpu)
recorder.uninstall()
recorder.finish()
later = sorted(cpu[1:])  # the first step left out, as in the runs above
print(json.dumps({{"spent": spent, "median_step": later[len(later) // 2], "steps": recorder.step}}))
"""


def breakdown(steps: int, width: int, every: int) -> dict:
    """One watched run in process with a CPU clock around each of the recorder's hooks: where the time goes (the
    patched ``backward``, ``next`` and loss functions add a few microseconds around these; not timed)."""
    tmp = tempfile.mkdtemp(prefix="torchsanity-bench-")
    try:
        code = _BREAKDOWN.format(scripts=str(TRAIN.parent), width=width, every=every, steps=steps,
                                 metrics=os.path.join(tmp, "metrics.jsonl"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=ENV)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def side_by_side(pairs: int, steps: int, width: int, every: int) -> dict[str, list[float]]:
    """``pairs`` plain and watched runs, alternating AB BA AB ...; each run's median, mean and 10th percentile
    step time (its first step left out, on both sides)."""
    runs: dict[str, list[float]] = {}
    for i in range(pairs):
        order = ("plain", "watch") if i % 2 == 0 else ("watch", "plain")
        for side in order:
            result = plain(steps, width) if side == "plain" else watched(steps, width, every)
            for k in STATS:
                runs.setdefault(f"{side} {k}", []).append(result[k])
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=8, help="plain/watched pairs of runs, alternating")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--width", type=int, default=16, help="channels of the first convolution")
    parser.add_argument("--worst", action="store_true", help="also measure K=1 (statistics every step)")
    parser.add_argument("--blocks", type=int, default=30,
                        help="alternating blocks of 10 steps of each kind (in-process part)")
    args = parser.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"machine: {os.cpu_count()} cores, load average {load:.1f} at start (timings on a shared machine are noisy)")
    print(f"{args.pairs} plain and {args.pairs} watched runs of {args.steps} steps, interleaved (AB BA AB ...); the "
          "figure is the median of the per-pair ratios (watched / plain) [min-max]. Per step: each run's median "
          "step (the first left out) in the training thread's CPU time and in wall time; process: the whole child's "
          "CPU time from its start to the end of training:")
    print(f"   {'model':<12}{'K':>13}{'clock':>13}{'plain':>26}{'watch':>26}{'pair ratios':>22}")
    headline: dict[str, float] = {}
    for every in (WATCH_EVERY, 1) if args.worst else (WATCH_EVERY,):
        runs = side_by_side(args.pairs, args.steps, args.width, every)
        label = f"{every} (default)" if every == WATCH_EVERY else str(every)
        for clock, key, unit in (("step cpu", "cpu_median_step", 1e3), ("step wall", "median_step", 1e3),
                                 ("process cpu", "process_cpu", 1.0)):
            p, w = runs[f"plain {key}"], runs[f"watch {key}"]
            pair = [b / a for a, b in zip(p, w)]
            suffix = "ms" if unit == 1e3 else "s"
            cell = [f"{_median(x) * unit:.2f}{suffix} [{min(x) * unit:.2f}-{max(x) * unit:.2f}]" for x in (p, w)]
            print(f"   {'CNN w=' + str(args.width):<12}{label:>13}{clock:>13}{cell[0]:>26}{cell[1]:>26}"
                  f"{f'{_median(pair):.3f} [{min(pair):.3f}-{max(pair):.3f}]':>22}")
            if every == WATCH_EVERY:
                headline[clock] = _median(pair)
    print(f"   (K: per-layer statistics every K steps; K={WATCH_EVERY} is the default, K=1 the worst case)")
    blocks, block = args.blocks, 10
    print(f"in one process, {blocks} blocks of {block} steps with the recorder alternating with {blocks} without "
          "(AB BA ...: both sides see the machine's load at nearly the same moments); the median of the per-block-pair "
          "ratios of the blocks' total time (each block's first step left out) [min-max]:")
    print(f"   {'model':<12}{'K':>13}{'clock':>13}{'plain median':>14}{'watch median':>14}{'pair ratios':>22}")
    for every in (WATCH_EVERY, 1) if args.worst else (WATCH_EVERY,):
        result = alternating(blocks, block, args.width, every)
        label = f"{every} (default)" if every == WATCH_EVERY else str(every)
        for clock, suffix in (("step cpu", "_cpu"), ("step wall", "")):
            plain_t, watch_t = result["plain" + suffix], result["watched" + suffix]
            n = block - 1
            pair = [sum(watch_t[i:i + n]) / sum(plain_t[i:i + n]) for i in range(0, len(plain_t), n)]
            print(f"   {'CNN w=' + str(args.width):<12}{label:>13}{clock:>13}{_median(plain_t) * 1e3:>12.2f}ms"
                  f"{_median(watch_t) * 1e3:>12.2f}ms{f'{_median(pair):.3f} [{min(pair):.3f}-{max(pair):.3f}]':>22}")
            if every == WATCH_EVERY:
                headline[f"blocks {clock}"] = _median(pair)
    print("overhead at the default K (median of per-pair ratios): " +
          ", ".join(f"{k} {v:.3f}" for k, v in headline.items()))

    result = breakdown(args.steps, args.width, WATCH_EVERY)
    spent, step = result["spent"], result["median_step"]
    total = sum(sum(v) for v in spent.values()) / result["steps"] / 1e3
    print(f"where the recorder's time goes (CPU time of the training thread), one watched run of {result['steps']} "
          f"steps in process (K={WATCH_EVERY}; median step {step * 1e3:.2f} ms CPU): {total:.0f} us a step on "
          f"average = {total / (step * 1e6):.1%} of it")
    print(f"   {'hook':<18}{'calls':>7}{'median call':>13}{'per step':>10}{'max call':>11}")
    for name, values in sorted(spent.items(), key=lambda kv: -sum(kv[1])):
        ordered = sorted(values)
        print(f"   {name:<18}{len(values):>7}{ordered[len(values) // 2] / 1e3:>11.1f}us"
              f"{sum(values) / result['steps'] / 1e3:>8.1f}us{ordered[-1] / 1e3:>9.0f}us")


if __name__ == "__main__":
    main()
