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
from typing import Callable, Mapping, Sequence

from ..probes.budget import BUDGET_ENV
from ..probes.checks import CHECK_IDS, PARENT_CHECKS
from ..probes.checks.determinism import determinism
from ..probes.guard import LIFELINE_ENV
from ..probes.lifeline import end_processes, tree
from ..probes.report import ProbeError, ReportError, parse_report, read_report

DEFAULT_TIMEOUT = 900.0
# errors that mean the script ended (or handed its training away) before a training step: its output says why
SCRIPT_ENDED = ("ScriptExited", "NoBackward", "NoSuchStep", "SpawnedWorkers")
DEFAULT_STEPS = 60
MARKER = "TORCHSANITY_PROBE_RUN"
GUARDED = os.name == "posix"  # the guard (probes/guard.py) between this process and the child's tree
EDITOR_ENV_PREFIXES = ("VSCODE_", "ELECTRON_", "APPLICATION_INSIGHTS_", "APPLICATIONINSIGHTS_", "CHROME_CRASHPAD_",
                       "CODE_SERVER_")
EDITOR_ENV_NAMES = {"ORIGINAL_XDG_CURRENT_DESKTOP", "CHROME_DESKTOP"}
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


PROGRESS_EVENTS = ("check-start", "step", "check-end", "captured", "warmup")  # what the caller's on_event hears


def _probes_dir() -> Path:
    from .. import probes

    if getattr(probes, "__file__", None):
        return Path(probes.__file__).resolve().parent
    return Path(list(probes.__path__)[0]).resolve()


def child_pythonpath(tmp: str) -> str:
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
def kill_tree(procs: list[subprocess.Popen], run_id: str, grace: float = 2.0) -> None:
    """SIGTERM the whole tree (the guards' descendants and process groups, anything carrying the run marker),
    then SIGKILL what is left after ``grace`` seconds."""
    groups = [p.pid for p in procs]

    def find() -> set[int]:
        live = [p.pid for p in procs if p.poll() is None]
        return tree(live, groups=groups, marker=(MARKER, run_id))

    end_processes(find, grace=grace)
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def probe_environment(base: Mapping[str, str]) -> dict[str, str]:
    """The user's environment for the probe child, minus the editor's own variables (its IPC handles, the
    Electron switches, telemetry) that would otherwise leak into the user's script."""
    env = {k: v for k, v in base.items() if not k.startswith(EDITOR_ENV_PREFIXES) and k not in EDITOR_ENV_NAMES}
    if "VSCODE_GIT_ASKPASS_MAIN" in base:  # VS Code's own askpass helper, useless without its IPC handle
        env.pop("GIT_ASKPASS", None)
    return env


# -- one child ----------------------------------------------------------------------------------------------
class _Child:
    """A launched child (or torchrun) process with its output drained on threads."""

    def __init__(self, cmd: list[str], env: dict, cwd: str | None, tag: str, out_dir: str,
                 on_output: Callable[[str, str], None] | None, lifeline: int):
        self.tag = tag
        self.out_dir = out_dir
        self.output: deque[str] = deque(maxlen=400)
        self.started = False  # the child reached its main(): it was running the script
        self.captured = False  # the script reached its first backward()
        if lifeline >= 0:
            env = dict(env, **{LIFELINE_ENV: f"{lifeline}:{os.getpid()}"})
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, start_new_session=True,
                                     pass_fds=(lifeline,) if lifeline >= 0 else ())
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
        self.started = self.started or any(ev.get("event") == "start" for ev in events)
        self.captured = self.captured or any(ev.get("event") == "captured" for ev in events)
        return events

    def report(self, rank: int = 0) -> dict | None:
        """The child's report (final, else partial), parsed against the report contract; None before it wrote one."""
        for name in (f"report-{self.tag}-{rank}.json", f"report-{self.tag}-{rank}.partial.json"):
            try:
                report = read_report(os.path.join(self.out_dir, name))
            except ReportError as exc:
                why = f"the probe child wrote a report that does not fit the report's shape: {exc}"
                return {"script": None, "device": None, "checks": [], "error": ProbeError("BadReport", why).to_json()}
            if report is not None:
                return report
        return None

    def final_report_exists(self, rank: int = 0) -> bool:
        return os.path.exists(os.path.join(self.out_dir, f"report-{self.tag}-{rank}.json"))


# -- the public entry point ---------------------------------------------------------------------------------
def run_probe(script: str, script_args: Sequence[str] = (), *, python: str | None = None,
              checks: Sequence[str] | None = None, steps: int | None = None, device: str = "auto",
              timeout: float | None = None, entry: str | None = None, nproc_per_node: int | None = None,
              cwd: str | None = None, on_event: Callable[[dict], None] | None = None,
              cancel: threading.Event | None = None, step: int | None = None, batch_dim: int | None = None,
              allow_mixing: bool = False, check_budget: float | None = None) -> ProbeOutcome:
    """Probe ``script`` (or the ``entry`` point) in a child process tree; never leaves a process behind.

    ``step`` picks the N-th training step (a backward() followed by an optimizer step; default the first),
    ``batch_dim`` says which dimension of the inputs is the batch (default: found from the DataLoader and the
    model), ``allow_mixing`` skips batch-independence for models that mix samples on purpose, ``check_budget``
    gives every budgeted check that many seconds (through the child's environment; default the table's)."""
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
    if step is not None and step < 1:
        raise ValueError("--step must be at least 1")
    if batch_dim is not None and batch_dim < 0:
        raise ValueError("--batch-dim must be 0 or more")
    if check_budget is not None and not float(check_budget) > 0:
        raise ValueError("--check-budget must be more than 0 seconds")
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
    # The guards hold the read end; this process holds the only write end, so its death — however it dies —
    # is end-of-file for them, and they end the tree.
    lifeline, lifeline_w = os.pipe() if GUARDED else (-1, -1)
    try:
        env = probe_environment(os.environ)
        env.update(QUIET_ENV)
        env[MARKER] = run_id
        env["PYTHONPATH"] = os.pathsep.join([child_pythonpath(tmp)] + ([env["PYTHONPATH"]] if env.get(
            "PYTHONPATH") else []))
        if device == "cpu":
            env["CUDA_VISIBLE_DEVICES"] = ""
        if check_budget is not None:
            env[BUDGET_ENV] = str(float(check_budget))
        python = python or sys.executable
        workdir = cwd or os.getcwd()  # as `python script.py` would run it
        child_checks = [c for c in wanted if c not in PARENT_CHECKS]
        cfg = {"out_dir": tmp, "checks": child_checks, "steps": steps or DEFAULT_STEPS, "device": device,
               "entry": entry, "cwd": cwd or os.getcwd(), "step": step or 1, "batch_dim": batch_dim,
               "allow_mixing": bool(allow_mixing), "step_given": step is not None, "timeout": timeout}
        if entry and script_path:
            cfg["script"] = script_path
        distributed = bool(nproc_per_node and nproc_per_node > 1)

        def command() -> list[str]:
            target = [] if entry else [script_path, *script_args]
            guard = [python, "-m", "torchsanity.probes.guard", "--"] if GUARDED else []
            if distributed:
                return [*guard, python, "-m", "torch.distributed.run", "--standalone",
                        f"--nproc-per-node={nproc_per_node}", "-m", "torchsanity.probes.child", *target]
            return [*guard, python, "-m", "torchsanity.probes.child", *target]

        def out_cb(stream: str, line: str) -> None:
            emit({"event": "log", "stream": stream, "text": line})

        env_main = dict(env, TORCHSANITY_PROBE_CONFIG=json.dumps(dict(cfg, tag="main", mode="probe")))
        emit({"event": "start", "script": script_path or entry, "checks": wanted})
        children.append(_Child(command(), env_main, workdir, "main", tmp, out_cb, lifeline))
        det = None
        if "determinism" in wanted and not distributed:
            env_det = dict(env, TORCHSANITY_PROBE_CONFIG=json.dumps(dict(cfg, tag="det", mode="fingerprint")))
            det = _Child(command(), env_det, workdir, "det", tmp, None, lifeline)
            children.append(det)
        if lifeline >= 0:
            os.close(lifeline)
            lifeline = -1
        main = children[0]
        timed_out = cancelled = False
        done_at = None
        deadline = started + timeout
        while True:
            for ev in main.new_events():
                if ev.get("event") in PROGRESS_EVENTS:
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
            if ev.get("event") in PROGRESS_EVENTS:
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
        _list_not_run(report, wanted)
        code = _exit_code(report)
        report["exit_code"] = code
        report["duration"] = round(time.monotonic() - started, 3)
        emit({"event": "end", "exit_code": code})
        return ProbeOutcome(dict(parse_report(report)), code, output, time.monotonic() - started)
    except BaseException:
        if children:
            kill_tree([c.proc for c in children], run_id)
        raise
    finally:
        for fd in (lifeline, lifeline_w):
            if fd >= 0:
                os.close(fd)
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
        elif rc is not None and (rc == 0 or main.started):  # os._exit(), or an exit the harness could not see
            if main.captured:
                msg = (f"the script exited (code {rc}) while the probe was running its checks; the checks it "
                       "finished are kept")
            else:
                msg = (f"the script exited (code {rc}) before its first backward(): nothing to probe. If training "
                       "sits behind a command-line flag, pass it after --; otherwise use --entry MODULE:FUNCTION")
            report["error"] = {"type": "ScriptExited", "source": "harness", "message": msg,
                               "output": "\n".join(list(main.output)[-20:])}
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
    err = report.get("error")
    if err and err.get("type") in SCRIPT_ENDED and not err.get("output"):
        err["output"] = "\n".join(list(main.output)[-40:])  # argparse's usage message, "file not found", ...
    if "determinism" in wanted and not (err and err.get("source") == "harness"):
        check = determinism(report, det.report() if det is not None else None, distributed=distributed)
        order = {c: i for i, c in enumerate(wanted)}
        report["checks"].append(check)
        report["checks"].sort(key=lambda c: order.get(c["id"], 99))
    return report


def _list_not_run(report: dict, wanted: list[str]) -> None:
    """Name the wanted checks that have no verdict, and why."""
    done = {c.get("id") for c in report.get("checks", [])}
    missing = [c for c in wanted if c not in done]
    if not missing:
        return
    if report.get("timed_out"):
        why = "the probe timed out first"
    elif report.get("cancelled"):
        why = "the probe was cancelled first"
    elif report.get("error") and not report.get("fingerprint"):
        why = "the script never reached a training step"
    else:
        why = "the probe stopped before them (see the error)"
    report["not_run"] = {"checks": missing, "reason": why}
