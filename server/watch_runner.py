"""Parent side of ``torchsanity watch``: run the script under ``probes/watch.py`` in a guarded process tree (the
probe's guard and lifeline: the tree dies with this process), follow the metrics file as it grows, evaluate the
verdicts while it runs, stop on the step budget, timeout or cancel, and assemble the report."""

from __future__ import annotations

import glob
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..probes import WATCH_CONFIG_ENV, WATCH_EVERY
from ..probes.guard import LIFELINE_ENV
from ..probes.watch_verdicts import Judge, Run, verdicts
from ..probes.watch_verdicts import json_number as num
from .probe_runner import (
    GUARDED,
    MARKER,
    child_pythonpath,
    kill_tree,
    probe_environment,
)

VERDICT_INTERVAL = 1.0  # seconds between live evaluations of the verdicts


@dataclass
class WatchOutcome:
    """The report (see ``build_report``), the exit code (0 no verdict, 1 verdicts, 2 error) and the run."""

    report: dict
    exit_code: int
    run: Run
    output: str = ""


class _Follower:
    """Reads the complete lines appended to the metrics file since the last call."""

    def __init__(self, path: str):
        self.path = path
        self.offset = 0

    def read(self, run: Run) -> list[dict]:
        """The new complete records (also added to ``run``); a line cut short or garbled is skipped."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self.offset += end + 1
        return run.extend(data[:end + 1].decode("utf-8", errors="replace").splitlines())


def _drain(stream, sink: deque, on_output: Callable[[str, str], None] | None, name: str) -> None:
    for raw in iter(stream.readline, b""):
        line = raw.decode("utf-8", errors="replace").rstrip("\n")
        sink.append(line)
        if on_output is not None:
            on_output(name, line)
    stream.close()


def watch(script: str, script_args: Sequence[str] = (), *, every: int = WATCH_EVERY, steps: int | None = None,
          epochs: int | None = None, timeout: float | None = None, device: str = "auto",
          metrics: str | None = None, keep_metrics: str | None = None, python: str | None = None,
          cwd: str | None = None, nproc_per_node: int | None = None,
          on_output: Callable[[str, str], None] | None = None,
          on_update: Callable[[Run], None] | None = None, on_records: Callable[[list[dict]], None] | None = None,
          on_verdict: Callable[[dict], None] | None = None,
          cancel: threading.Event | None = None) -> WatchOutcome:
    """Watch ``script`` to its end (or ``steps`` optimizer steps, ``epochs`` epochs, ``timeout`` seconds,
    ``cancel``); never leaves a process behind. The metrics are written to ``metrics`` as the run goes, or to a
    private file copied to ``keep_metrics`` at the end. ``on_records`` gets the new metrics records (the JSON lines, every
    field the recorder wrote) as they arrive, ``on_update`` the run so far, ``on_verdict`` each verdict once, as it
    fires. ``nproc_per_node`` > 1 runs the script under ``torch.distributed.run`` (torchrun): every rank is watched
    and rank 0 reports."""
    started = time.monotonic()
    if every < 1:
        raise ValueError("--every must be at least 1")
    if steps is not None and steps < 1:
        raise ValueError("--steps must be at least 1")
    if epochs is not None and epochs < 1:
        raise ValueError("--epochs must be at least 1")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, not {device!r}")
    if timeout is not None and timeout <= 0:
        raise ValueError("--timeout must be positive")
    if nproc_per_node is not None and nproc_per_node < 1:
        raise ValueError("--nproc-per-node must be at least 1")
    workdir = cwd or os.getcwd()
    script_path = os.path.abspath(os.path.join(workdir, script))
    run = Run()
    if not os.path.isfile(script_path):
        report = build_report(run, script_path, [], "error", 0.0, every, None)
        report["error"] = {"type": "FileNotFoundError", "message": f"no such script: {script}", "source": "harness"}
        report["exit_code"] = 2
        return WatchOutcome(report, 2, run)
    args = list(script_args)
    if args and args[0] == "--":
        args = args[1:]
    run_id = uuid.uuid4().hex
    tmp = tempfile.mkdtemp(prefix="torchsanity-watch-")
    metrics_path = os.path.abspath(metrics) if metrics else os.path.join(tmp, "metrics.jsonl")
    open(metrics_path, "w", encoding="utf-8").close()
    for stale in glob.glob(glob.escape(metrics_path) + ".rank*"):  # other ranks' files of an earlier run
        os.remove(stale)
    lifeline, lifeline_w = os.pipe() if GUARDED else (-1, -1)
    proc = None
    output: deque[str] = deque(maxlen=400)
    try:
        env = probe_environment(os.environ)
        env.update({MARKER: run_id, "PYTHONUNBUFFERED": "1", "TORCHSANITY_WATCH": "1",
                    WATCH_CONFIG_ENV: json.dumps({"metrics": metrics_path, "every": every, "steps": steps,
                                                  "epochs": epochs, "device": device})})
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        env["PYTHONPATH"] = os.pathsep.join([child_pythonpath(tmp)] + ([env["PYTHONPATH"]] if env.get(
            "PYTHONPATH") else []))
        if lifeline >= 0:
            env[LIFELINE_ENV] = f"{lifeline}:{os.getpid()}"
        python = python or sys.executable
        guard = [python, "-m", "torchsanity.probes.guard", "--"] if GUARDED else []
        torchrun = ([python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}"]
                    if nproc_per_node and nproc_per_node > 1 else [python])
        command = [*guard, *torchrun, "-m", "torchsanity.probes.watch", script_path, *args]
        proc = subprocess.Popen(command, env=env, cwd=workdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, start_new_session=True,
                                pass_fds=(lifeline,) if lifeline >= 0 else ())
        if lifeline >= 0:
            os.close(lifeline)
            lifeline = -1
        drains = [threading.Thread(target=_drain, args=(proc.stdout, output, on_output, "stdout"), daemon=True),
                  threading.Thread(target=_drain, args=(proc.stderr, output, on_output, "stderr"), daemon=True)]
        for t in drains:
            t.start()
        follower = _Follower(metrics_path)
        judge = Judge()  # the verdicts, evaluated incrementally: each tick reads only the new records
        fired: set[str] = set()
        stopped = None
        last_check = 0.0
        while True:
            exited = proc.poll() is not None
            _deliver(follower.read(run), run, on_records, on_update)
            now = time.monotonic()
            if on_verdict is not None and now - last_check >= VERDICT_INTERVAL:
                last_check = now
                _announce(judge.update(run), fired, on_verdict)
            if exited:
                break
            if cancel is not None and cancel.is_set():
                stopped = "cancelled"
                break
            if timeout is not None and now - started > timeout:
                stopped = "timeout"
                break
            time.sleep(0.05)
        kill_tree([proc], run_id)  # SIGTERM first: the recorder writes what it holds, then its "end" record
        for t in drains:
            t.join(2.0)
        _deliver(follower.read(run), run, on_records, on_update)
        found = judge.update(run, final=True)
        if on_verdict is not None:
            _announce(found, fired, on_verdict)
        reason = stopped or (run.end or {}).get("reason") or "killed"
        report = build_report(run, script_path, args, reason, time.monotonic() - started, every, proc.returncode,
                              found)
        if metrics:
            report["metrics"] = metrics_path
        elif keep_metrics:
            try:
                shutil.copyfile(metrics_path, keep_metrics)
                report["metrics"] = os.path.abspath(keep_metrics)
            except OSError as exc:
                report["metrics_error"] = f"cannot write {keep_metrics}: {exc}"
        return WatchOutcome(report, report["exit_code"], run, "\n".join(output))
    except BaseException:
        if proc is not None:
            kill_tree([proc], run_id)
        raise
    finally:
        for fd in (lifeline, lifeline_w):
            if fd >= 0:
                os.close(fd)
        shutil.rmtree(tmp, ignore_errors=True)


def _deliver(records: list[dict], run: Run, on_records, on_update) -> None:
    if records and on_records is not None:
        on_records(records)
    if records and on_update is not None:
        on_update(run)


def _announce(found: list[dict], fired: set, on_verdict: Callable[[dict], None]) -> None:
    for v in found:
        if v["id"] not in fired:
            fired.add(v["id"])
            on_verdict(v)


def build_report(run: Run, script: str, args: list[str], stopped: str, duration: float, every: int,
                 returncode: int | None, found: list[dict] | None = None) -> dict:
    """The report: series, per-layer samples, verdicts (``found``, or judged here over the whole run), a summary
    and how the run stopped."""
    found = verdicts(run) if found is None else found
    report: dict = {
        "kind": "watch", "script": script, "args": args, "every": every, "stopped": stopped,
        "duration": round(duration, 3), "steps": run.steps[-1] if run.steps else 0, "optimizer": run.optimizer,
        "series": {"step": run.steps, "loss": [num(x) for x in run.loss],
                   "grad_norm": [num(x) for x in run.grad_norm],
                   "lr": [[num(x) for x in lrs] for lrs in run.lr], "seconds": run.seconds,
                   "data_seconds": run.data_seconds, "samples_per_second": run.samples_per_second,
                   "epoch": run.epoch},
        "layers": run.layers, "ndim": run.ndim,
        "samples": [{k: ([num(x) for x in v] if isinstance(v, list) else v) for k, v in s.items()}
                    for s in run.samples],
        "evals": [dict(e, loss=num(e.get("loss"))) for e in run.evals], "activations": run.activations,
        "filters": run.filters, "nonfinite": run.nonfinite, "device": run.start.get("device"),
        "schedulers": run.schedulers, "verdicts": found, "summary": summary(run),
    }
    end = run.end or {}
    if end.get("error"):
        report["error"] = dict(end["error"], source="script")
    elif run.end is None and stopped not in ("timeout", "cancelled"):
        why = f"killed by {_signal_name(-returncode)}" if returncode is not None and returncode < 0 else \
            f"exited with code {returncode} without finishing its record"
        report["error"] = {"type": "Killed" if returncode is not None and returncode < 0 else "ChildFailed",
                           "source": "harness", "message": f"the watched process was {why}"}
    elif not run.steps and stopped in ("finished", "exit"):
        report["error"] = {"type": "NoOptimizerStep", "source": "harness", "message": (
            "the script ended without an optimizer step: nothing to watch. If training sits behind a command-line "
            "flag, pass it after --")}
    report["exit_code"] = 2 if "error" in report else (1 if found else 0)
    return report


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


def summary(run: Run) -> dict:
    """First, last and best loss, and the median step time."""
    finite = [(s, x) for s, x in zip(run.steps, run.loss) if x is not None and math.isfinite(x)]
    times = sorted(t for t in run.seconds if t is not None)
    out: dict = {"steps": run.steps[-1] if run.steps else 0,
                 "median_step_seconds": times[len(times) // 2] if times else None}
    if finite:
        best = min(finite, key=lambda p: p[1])
        out.update({"first_loss": finite[0][1], "last_loss": finite[-1][1], "best_loss": best[1],
                    "best_step": best[0]})
    return out
