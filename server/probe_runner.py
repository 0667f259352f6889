"""Parent side of ``torchsanity probe``: launch the script under the probe harness in a child process tree,
stream its progress, enforce the time budget and cancellation, and assemble the JSON report.

Used by the CLI (``probe_command``) and the language server. The child runs in the user's interpreter, which
need not have torchsanity installed: a temporary folder holding ``torchsanity/probes`` goes on its PYTHONPATH.
"""

from __future__ import annotations

import json
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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from ..probes import CHECK_IDS

DEFAULT_TIMEOUT = 300.0
DEFAULT_STEPS = 60
MARKER = "TORCHSANITY_PROBE_RUN"
QUIET_ENV = {
    "WANDB_MODE": "disabled",
    "WANDB_DISABLED": "true",
    "WANDB_SILENT": "true",
    "NEPTUNE_MODE": "debug",
    "CLEARML_OFFLINE_MODE": "1",
    "COMET_AUTO_LOG_DISABLE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "PYTHONUNBUFFERED": "1",
    "TORCHSANITY_PROBE": "1",
}


@dataclass
class ProbeOutcome:
    """The report (see the issue's JSON shape), the exit code (0 pass/warn, 1 fail, 2 error) and the output."""

    report: dict
    exit_code: int
    output: str = ""
    duration: float = 0.0
    extra: dict = field(default_factory=dict)


def _probes_dir() -> Path:
    from .. import probes

    if getattr(probes, "__file__", None):
        return Path(probes.__file__).resolve().parent
    return Path(list(probes.__path__)[0]).resolve()


def _child_pythonpath(tmp: str) -> str:
    """A folder with ``torchsanity/probes`` (a symlink, or a copy where links are not allowed)."""
    root = Path(tmp) / "pythonpath"
    pkg = root / "torchsanity"
    pkg.mkdir(parents=True, exist_ok=True)
    target = pkg / "probes"
    src = _probes_dir()
    try:
        target.symlink_to(src, target_is_directory=True)
    except OSError:
        shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__"))
    return str(root)


# -- process-tree handling ----------------------------------------------------------------------------------
def _proc_table() -> dict[int, int]:
    table: dict[int, int] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return table
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
            table[int(name)] = int(stat[stat.rindex(")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return table


def marked_processes(run_id: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries this run's marker."""
    needle = f"{MARKER}={run_id}".encode()
    found = []
    for pid in _proc_table():
        try:
            with open(f"/proc/{pid}/environ", "rb") as fh:
                if needle in fh.read().split(b"\0"):
                    with open(f"/proc/{pid}/stat", "rb") as st:
                        state = st.read().decode(errors="replace")
                    if state[state.rindex(")") + 2:].split()[0] != "Z":
                        found.append(pid)
        except (OSError, ValueError):
            continue
    return found


def _tree(roots: list[int], run_id: str) -> set[int]:
    table = _proc_table()
    children: dict[int, list[int]] = {}
    for pid, ppid in table.items():
        children.setdefault(ppid, []).append(pid)
    out: set[int] = set()
    stack = [r for r in roots if r in table]
    while stack:
        pid = stack.pop()
        if pid in out:
            continue
        out.add(pid)
        stack.extend(children.get(pid, []))
    out.update(marked_processes(run_id))
    out.discard(os.getpid())
    return out


def kill_tree(procs: list[subprocess.Popen], run_id: str, grace: float = 2.0) -> None:
    """SIGTERM the whole tree (process groups, descendants, anything carrying the run marker), then SIGKILL."""
    roots = [p.pid for p in procs]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        pids = _tree(roots, run_id)
        for p in procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, sig)
                except OSError:
                    pass
        for pid in pids:
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.monotonic() + (grace if sig == signal.SIGTERM else 5.0)
        while time.monotonic() < deadline:
            for p in procs:
                p.poll()
            if all(p.returncode is not None for p in procs) and not marked_processes(run_id):
                break
            time.sleep(0.05)
        else:
            continue
        break
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


# -- one child ----------------------------------------------------------------------------------------------
class _Child:
    """A launched child (or torchrun) process with its output drained on threads."""

    def __init__(self, cmd: list[str], env: dict, cwd: str | None, tag: str, out_dir: str,
                 on_output: Callable[[str, str], None] | None):
        self.tag = tag
        self.out_dir = out_dir
        self.output: deque[str] = deque(maxlen=400)
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True)
        self._threads = [threading.Thread(target=self._drain, args=(self.proc.stdout, "stdout", on_output),
                                          daemon=True),
                         threading.Thread(target=self._drain, args=(self.proc.stderr, "stderr", on_output),
                                          daemon=True)]
        for t in self._threads:
            t.start()
        self._offset = 0

    def _drain(self, stream, name: str, on_output) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode("utf-8", errors="replace").rstrip("\n")
            self.output.append(line)
            if on_output is not None:
                on_output(name, line)
        stream.close()

    def join_output(self, timeout: float = 2.0) -> None:
        for t in self._threads:
            t.join(timeout)

    def new_events(self, rank: int = 0) -> list[dict]:
        path = os.path.join(self.out_dir, f"events-{self.tag}-{rank}.jsonl")
        try:
            with open(path, "rb") as fh:
                fh.seek(self._offset)
                data = fh.read()
        except OSError:
            return []
        end = data.rfind(b"\n")
        if end < 0:
            return []
        self._offset += end + 1
        events = []
        for line in data[: end + 1].splitlines():
            try:
                events.append(json.loads(line))
            except ValueError:
                continue
        return events

    def report(self, rank: int = 0) -> dict | None:
        for name in (f"report-{self.tag}-{rank}.json", f"report-{self.tag}-{rank}.partial.json"):
            try:
                with open(os.path.join(self.out_dir, name), encoding="utf-8") as fh:
                    return json.load(fh)
            except (OSError, ValueError):
                continue
        return None

    def final_report_exists(self, rank: int = 0) -> bool:
        return os.path.exists(os.path.join(self.out_dir, f"report-{self.tag}-{rank}.json"))


# -- the public entry point ---------------------------------------------------------------------------------
def run_probe(script: str, script_args: Sequence[str] = (), *, python: str | None = None,
              checks: Sequence[str] | None = None, steps: int | None = None, device: str = "auto",
              timeout: float | None = None, entry: str | None = None, nproc_per_node: int | None = None,
              cwd: str | None = None, on_event: Callable[[dict], None] | None = None,
              cancel: threading.Event | None = None) -> ProbeOutcome:
    """Probe ``script`` (or the ``entry`` point) in a child process tree; never leaves a process behind."""
    started = time.monotonic()
    wanted = list(checks) if checks else list(CHECK_IDS)
    unknown = [c for c in wanted if c not in CHECK_IDS]
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}; choose from {', '.join(CHECK_IDS)}")
    if device not in ("auto", "cpu", "cuda"):
        raise ValueError(f"--device must be auto, cpu or cuda, not {device!r}")
    if steps is not None and steps < 2:
        raise ValueError("--steps must be at least 2")
    if nproc_per_node is not None and nproc_per_node < 1:
        raise ValueError("--nproc-per-node must be at least 1")
    timeout = DEFAULT_TIMEOUT if timeout is None else float(timeout)
    script_args = list(script_args)
    if script_args and script_args[0] == "--":
        script_args = script_args[1:]
    script_path = os.path.abspath(os.path.join(cwd or os.getcwd(), script)) if script else ""
    base_report = {"script": script_path or entry, "device": None, "checks": []}
    if not entry and not os.path.isfile(script_path):
        base_report["error"] = {"type": "FileNotFoundError", "message": f"no such script: {script}",
                                "source": "harness"}
        return ProbeOutcome(base_report, 2, duration=time.monotonic() - started)

    def emit(event: dict) -> None:
        if on_event is not None:
            try:
                on_event(event)
            except Exception:
                pass

    run_id = uuid.uuid4().hex
    tmp = tempfile.mkdtemp(prefix="torchsanity-probe-")
    children: list[_Child] = []
    try:
        env = dict(os.environ)
        env.update(QUIET_ENV)
        env[MARKER] = run_id
        env["PYTHONPATH"] = os.pathsep.join([_child_pythonpath(tmp)] + ([env["PYTHONPATH"]] if env.get(
            "PYTHONPATH") else []))
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        python = python or sys.executable
        workdir = cwd or os.getcwd()  # as `python script.py` would run it
        child_checks = [c for c in wanted if c != "determinism"]
        cfg = {"out_dir": tmp, "checks": child_checks, "steps": steps or DEFAULT_STEPS, "device": device,
               "entry": entry, "cwd": cwd or os.getcwd()}
        if entry and script_path:
            cfg["script"] = script_path
        distributed = bool(nproc_per_node and nproc_per_node > 1)

        def command() -> list[str]:
            target = [] if entry else [script_path, *script_args]
            if distributed:
                return [python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc_per_node}",
                        "-m", "torchsanity.probes.child", *target]
            return [python, "-m", "torchsanity.probes.child", *target]

        def out_cb(stream: str, line: str) -> None:
            emit({"event": "log", "stream": stream, "text": line})

        env_main = dict(env, TORCHSANITY_PROBE_CONFIG=json.dumps(dict(cfg, tag="main", mode="probe")))
        emit({"event": "start", "script": script_path or entry, "checks": wanted})
        children.append(_Child(command(), env_main, workdir, "main", tmp, out_cb))
        det = None
        if "determinism" in wanted and not distributed:
            env_det = dict(env, TORCHSANITY_PROBE_CONFIG=json.dumps(dict(cfg, tag="det", mode="fingerprint")))
            det = _Child(command(), env_det, workdir, "det", tmp, None)
            children.append(det)
        main = children[0]
        timed_out = cancelled = False
        done_at = None
        deadline = started + timeout
        while True:
            for ev in main.new_events():
                if ev.get("event") in ("check-start", "step", "check-end", "captured"):
                    emit(ev)
            if all(c.proc.poll() is not None for c in children):
                break
            if main.proc.poll() is not None and "error" in (main.report() or {}):
                break  # the script failed: the determinism run has nothing left to compare with
            if cancel is not None and cancel.is_set():
                cancelled = True
                break
            now = time.monotonic()
            if now > deadline:
                timed_out = True
                break
            finished = [c for c in children if c.final_report_exists()]
            if len(finished) == len(children):
                done_at = done_at or now
                if now - done_at > 10:  # reported but not exiting (threads, swallowed StopProbe): stop it
                    break
            time.sleep(0.05)
        kill_tree([c.proc for c in children], run_id)
        for c in children:
            c.join_output()
        for ev in main.new_events():
            if ev.get("event") in ("check-start", "step", "check-end", "captured"):
                emit(ev)
        report = _assemble(main, det, base_report, wanted, distributed, nproc_per_node or 1)
        output = "\n".join(main.output)
        if timed_out:
            report["timed_out"] = True
            report["error"] = {"type": "Timeout", "source": "harness", "message": (
                f"the probe did not finish within {timeout:.0f} s and all its processes were stopped; the script may "
                "hang before its first backward() (waiting for data, input() or a distributed peer) or be too slow "
                "— raise --timeout or lower --steps")}
        elif cancelled:
            report["cancelled"] = True
            report["error"] = {"type": "Cancelled", "source": "harness", "message": "the probe was cancelled"}
        code = _exit_code(report)
        report["exit_code"] = code
        report["duration"] = round(time.monotonic() - started, 3)
        emit({"event": "end", "exit_code": code})
        return ProbeOutcome(report, code, output, time.monotonic() - started)
    except BaseException:
        if children:
            kill_tree([c.proc for c in children], run_id)
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _exit_code(report: dict) -> int:
    """0 all pass/warn/skip, 1 any fail, 2 harness error (script raised, timeout, cancel, a check that errored)."""
    if report.get("error") or report.get("timed_out") or report.get("cancelled"):
        return 2
    statuses = {c.get("status") for c in report.get("checks", [])}
    if "fail" in statuses:
        return 1
    return 2 if "error" in statuses else 0


def _assemble(main: _Child, det: _Child | None, base: dict, wanted: list[str], distributed: bool,
              nproc: int) -> dict:
    report = main.report() or dict(base)
    report.setdefault("checks", [])
    report["script"] = base["script"]
    rc = main.proc.returncode
    if main.report() is None or (not main.final_report_exists() and "error" not in report):
        if rc is not None and rc < 0:
            sig = signal.Signals(-rc).name if -rc in signal.Signals._value2member_map_ else str(-rc)
            msg = f"the probe process was killed by {sig}"
            if -rc == signal.SIGKILL:
                msg += " — most likely out of memory (the kernel's OOM killer)"
                report["oom"] = True
            report["error"] = {"type": "Killed", "source": "harness", "message": msg}
        elif rc not in (None, 0):
            tail = "\n".join(list(main.output)[-20:])
            msg = f"the probe process exited with code {rc} before reporting"
            if "No module named 'torch'" in tail:
                msg = "the interpreter has no torch installed (No module named 'torch'); point --python at the " \
                      "environment the script trains in"
            report["error"] = {"type": "ChildFailed", "source": "harness", "message": msg, "output": tail}
    if distributed:
        ranks = []
        for r in range(nproc):
            rep = main.report(r)
            ranks.append({"rank": r, "exit_code": rep.get("exit_code") if rep else None,
                          "statuses": {c["id"]: c["status"] for c in rep.get("checks", [])} if rep else None,
                          "error": rep.get("error") if rep else None})
        report["ranks"] = ranks
        report["world_size"] = nproc
    if "determinism" in wanted:
        check = _determinism(report, det, distributed)
        order = {c: i for i, c in enumerate(wanted)}
        report["checks"].append(check)
        report["checks"].sort(key=lambda c: order.get(c["id"], 99))
    return report


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def _determinism(main_report: dict, det: _Child | None, distributed: bool) -> dict:
    sites = main_report.get("sites", {})

    def check(status: str, message: str, measured=None, expected=None, site: str = "model", series=None) -> dict:
        s = sites.get(site) or sites.get("loop") or {}
        out = {"id": "determinism", "status": status, "measured": measured, "expected": expected,
               "message": message, "line": s.get("line"), "series": series or {}}
        if s.get("path") and os.path.abspath(s["path"]) != os.path.abspath(main_report.get("script") or ""):
            out["path"] = s["path"]
        return out

    if distributed or det is None:
        return check("skip", "not run under --nproc-per-node (two more distributed launches would be needed)")
    a = main_report.get("fingerprint")
    other = det.report()
    b = other.get("fingerprint") if other else None
    if not a or not b:
        why = (other or {}).get("error", {}).get("message") if other else None
        return check("skip" if not a else "error", "the second run did not reach its first backward()" +
                     (f": {why}" if why else "") if a else "the first run did not reach its first backward()")
    device = str(main_report.get("device") or "cpu")
    tol = 1e-6 if device.startswith("cpu") else 1e-4
    params = max(_rel(x, y) for x, y in zip(a["params"], b["params"]))
    batch = max(_rel(x, y) for x, y in zip(a["batch"], b["batch"]))
    loss = _rel(a["loss"], b["loss"])
    measured = {"first_loss": [a["loss"], b["loss"]], "weights_rel_diff": params, "batch_rel_diff": batch,
                "loss_rel_diff": loss}
    series = {"runs": ["run 1", "run 2"], "first_loss": [a["loss"], b["loss"]]}
    expected = "identical first loss, weights and batch in two fresh runs"
    status = "fail" if device.startswith("cpu") else "warn"
    if params > tol:
        return check(status, "two fresh runs start from different weights: seed torch (torch.manual_seed) before "
                     "building the model", measured, expected, "model", series)
    if batch > tol:
        return check(status, "two fresh runs see a different first batch: seed the data order and generation "
                     "(torch, numpy and random seeds; a seeded DataLoader generator)", measured, expected, "data",
                     series)
    if loss > tol:
        return check(status, "same weights and batch but a different first loss: unseeded randomness in the "
                     "forward pass (dropout, noise) or nondeterministic kernels", measured, expected, "loss", series)
    return check("pass", f"two fresh runs start identically (first loss {a['loss']:.6g}, same weights and batch)",
                 measured, expected, "model", series)
