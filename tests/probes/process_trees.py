"""Kill a parent that started a process tree — the probe CLI, the language server in the middle of a probe, the
language server while its analysis worker is busy — with a signal, then count the survivors in /proc.

Shared by tests/probes/test_process_tree.py and tests/bench/bench_process_safety.py. Every process of a run is
recognised three ways: a unique token in its command line, the same token in its environment (the parent is
started with ``TS_TREE_TOKEN=<token>``, which everything it starts inherits), or its pid in the pid file the
test scripts append to (the double-forked daemon replaces its environment and command line).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "scripts"
TOKEN_ENV = "TS_TREE_TOKEN"
# script -> how many processes it records in its pid file once its tree is complete
TREE_SCRIPTS = {"tree_dataloader.py": 3, "tree_popen.py": 2, "tree_daemon.py": 2}
SERVER = [sys.executable, "-m", "torchsanity.server", "server"]


@dataclass
class Outcome:
    parent: str
    signal: str
    script: str
    tree: list[int] = field(default_factory=list)  # the processes the parent's death must end
    survivors: list[int] = field(default_factory=list)
    parent_exit: int | None = None
    parent_stderr: str = ""


def _stat(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read().decode(errors="replace")
    except OSError:
        return None
    return text[text.rindex(")") + 2:].split()


def start_time(pid: int) -> str | None:
    """The process' start time (to tell it from a later process that reuses its pid); None when gone."""
    fields = _stat(pid)
    return None if fields is None or fields[0] in "ZX" else fields[19]


def _has_token(pid: int, token: bytes) -> bool:
    for name in ("cmdline", "environ"):
        try:
            with open(f"/proc/{pid}/{name}", "rb") as fh:
                if token in fh.read():
                    return True
        except OSError:
            continue
    return False


def live_processes(token: str, known: dict[int, str]) -> list[int]:
    """Live (non-zombie) processes carrying ``token``, and the ``known`` pids (with their start times) still
    alive; never this process."""
    found = {pid for pid, started in known.items() if start_time(pid) == started}
    needle = token.encode()
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid() and _has_token(int(name), needle) and start_time(int(name)):
            found.add(int(name))
    return sorted(found)


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _recorded(pid_file: Path, count: int) -> dict[int, str] | None:
    try:
        pids = [int(p) for p in pid_file.read_text(encoding="utf-8").split()]
    except (OSError, ValueError):
        return None
    if len(pids) < count:
        return None
    return {pid: start_time(pid) or "" for pid in pids}


def _frame(message: dict) -> bytes:
    body = json.dumps(message).encode()
    return b"Content-Length: %d\r\n\r\n" % len(body) + body


def _start_server(token: str, workdir: Path, log) -> subprocess.Popen:
    server = subprocess.Popen(SERVER, stdin=subprocess.PIPE, stdout=log, stderr=subprocess.STDOUT, cwd=workdir,
                              env=dict(os.environ, **{TOKEN_ENV: token}))
    root = workdir.as_uri()
    assert server.stdin is not None
    server.stdin.write(_frame({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "processId": None, "rootUri": root, "workspaceFolders": [{"uri": root, "name": "w"}], "capabilities": {}}}))
    server.stdin.write(_frame({"jsonrpc": "2.0", "method": "initialized", "params": {}}))
    server.stdin.flush()
    return server


def _children(pid: int) -> list[int]:
    out = []
    for name in os.listdir("/proc"):
        fields = _stat(int(name)) if name.isdigit() else None
        if fields is not None and int(fields[1]) == pid:
            out.append(int(name))
    return out


def _busy_worker(server: subprocess.Popen) -> int:
    """The analysis worker's pid once it has spent 1.5 s of CPU time (importing the engine, then analysing)."""
    def busy():
        for pid in _children(server.pid):
            fields = _stat(pid)
            if fields and int(fields[11]) + int(fields[12]) >= 1.5 * os.sysconf("SC_CLK_TCK"):
                return pid
        return None

    return _wait(busy, 60, "the analysis worker to be busy")


def big_training_file(functions: int = 3000) -> str:
    """A long, valid training module (33 k lines for 3,000 functions): many seconds of analysis."""
    block = ("\n\ndef train_{i}(model, loader, optimizer, criterion):\n    model.train()\n    for x, y in loader:\n"
             "        optimizer.zero_grad()\n        out = model(x.view(x.size(0), -1))\n"
             "        loss = criterion(out, y)\n        loss.backward()\n        optimizer.step()\n"
             "    return loss.item()\n")
    return "import torch\n" + "".join(block.format(i=i) for i in range(functions))


def kill_parent(parent: str, signame: str, script: str = "tree_popen.py", within: float = 5.0) -> Outcome:
    """Start ``parent`` (``cli``, ``server`` or ``worker``) with its tree, send it ``signame`` once the tree is
    complete, and return the processes of that tree still alive ``within`` seconds after the parent died."""
    token = f"tstree-{uuid.uuid4().hex}"
    outcome = Outcome(parent, signame, script if parent != "worker" else "(analysis)")
    with tempfile.TemporaryDirectory(prefix="tstree-") as tmp:
        workdir = Path(tmp)
        pid_file = workdir / "pids.txt"
        log_path = workdir / "parent.log"
        with open(log_path, "wb") as log:
            if parent == "cli":
                proc = subprocess.Popen(
                    [sys.executable, "-m", "torchsanity.server", "probe", "--checks", "initial-loss", "--device", "cpu",
                     "--timeout", "120", str(SCRIPTS / script), token, str(pid_file)],
                    stdout=log, stderr=subprocess.STDOUT, cwd=workdir, env=dict(os.environ, **{TOKEN_ENV: token}))
            else:
                proc = _start_server(token, workdir, log)
            try:
                assert proc.stdin is not None or parent == "cli"
                if parent == "server":
                    proc.stdin.write(_frame({"jsonrpc": "2.0", "id": 2, "method": "torchsanity/runProbe", "params": {
                        "uri": (SCRIPTS / script).as_uri(), "args": [token, str(pid_file)], "device": "cpu",
                        "checks": ["initial-loss"], "timeout": 120, "cwd": str(workdir)}}))
                    proc.stdin.flush()
                if parent == "worker":
                    uri = (workdir / "big_train.py").as_uri()
                    proc.stdin.write(_frame({"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {
                        "textDocument": {"uri": uri, "languageId": "python", "version": 1,
                                         "text": big_training_file()}}}))
                    proc.stdin.flush()
                    worker = _busy_worker(proc)
                    known = {worker: start_time(worker) or ""}
                else:
                    known = _wait(lambda: _recorded(pid_file, TREE_SCRIPTS[script]), 120, f"{script}'s tree")
                outcome.tree = sorted(known)
                proc.send_signal(getattr(signal, signame))
                try:
                    proc.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
                outcome.parent_exit = proc.returncode
                deadline = time.monotonic() + within
                while time.monotonic() < deadline and live_processes(token, known):
                    time.sleep(0.1)
                outcome.survivors = live_processes(token, known)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
                for pid in live_processes(token, {}) + [p for p in outcome.survivors]:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except OSError:
                        pass
        outcome.parent_stderr = log_path.read_text(encoding="utf-8", errors="replace")[-2000:]
    return outcome
