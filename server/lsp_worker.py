"""The analysis worker: a child process (``python -m torchsanity.server.lsp_worker``) that runs the
engine for the language server, so that

- a runaway analysis (a pathological file, an engine bug) can be stopped: it gets a time budget
  (``torchsanity.analysisTimeoutMs``), and an analysis whose document changed or closed meanwhile is
  abandoned when it has already run for a while — the process is killed and restarted on next use;
- the server's event loop never competes with the engine for the GIL;
- a crash of the native parser costs one analysis, not the server.

Requests and answers are pickles, length-prefixed, over the child's stdin / stdout (its own pipes, not
the LSP channel; the child points its fd 1 at stderr so a stray ``print`` cannot corrupt anything).
The child keeps one :class:`~torchsanity.analyzers.Project` per root (:class:`~.lsp_analysis.Projects`),
so cross-file resolution is cached; each snapshot brings the open buffers' text and the module files
changed on disk, which invalidate what they touch.

The worker dies with the server, however the server dies (SIGKILL included), even in the middle of an
analysis: it has a parent-death signal and a watchdog thread on a pipe whose write end only the server holds
(:mod:`torchsanity.probes.lifeline`). The parent-death signal follows the *thread* that started the worker:
the server starts it from its main thread or its single, long-lived analysis thread.

Set ``TORCHSANITY_LSP_WORKER=thread`` to analyse in a thread of the server instead.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time
from dataclasses import replace
from typing import Any, BinaryIO

from ..probes.lifeline import die_with_parent, watch_parent

logger = logging.getLogger(__name__)

_HEADER = struct.Struct("<Q")


class WorkerAborted(Exception):
    """The analysis was stopped: ``reason`` is ``timeout``, ``superseded``, ``closed`` or ``crashed``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Failure:
    def __init__(self, message: str) -> None:
        self.message = message


def _write(stream: BinaryIO, value: Any) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def _read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks = []
    while size:
        chunk = stream.read(size)
        if not chunk:
            raise EOFError("the worker's pipe closed")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def _read(stream: BinaryIO) -> Any:
    (size,) = _HEADER.unpack(_read_exactly(stream, _HEADER.size))
    return pickle.loads(_read_exactly(stream, size))


# The worker imports exactly what the server imports: the server's own sys.path (which holds the VS Code
# bundle's folders when the extension's launcher started it), in isolated mode, so nothing in the
# workspace's current directory or the environment can shadow the engine.
_WORKER_BOOT = (
    "import json, sys; sys.path[:0] = json.loads(sys.argv[1]); "
    "from torchsanity.server.lsp_worker import _serve; _serve()"
)


class AnalysisWorker:
    """The parent's handle on the worker process. :meth:`call` is used by one thread at a time (the
    server's single analysis thread); :meth:`kill` may be called from any thread."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen | None = None
        self._ready: subprocess.Popen | None = None  # the process that said it is ready
        self._lifeline = -1  # the write end of the current process' watchdog pipe (never written)
        self._reason: str | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen:
        with self._lock:
            if self._proc is None or self._proc.poll() is not None:
                self._close_lifeline()
                read_end, self._lifeline = os.pipe() if os.name == "posix" else (-1, -1)
                try:
                    self._proc = subprocess.Popen(
                        [sys.executable, "-I", "-c", _WORKER_BOOT, json.dumps(sys.path),
                         json.dumps({"parent": os.getpid(), "lifeline": read_end})],
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        stderr=None,
                        bufsize=0,
                        pass_fds=(read_end,) if read_end >= 0 else (),
                    )
                finally:
                    if read_end >= 0:
                        os.close(read_end)
            return self._proc

    def _close_lifeline(self) -> None:
        if self._lifeline >= 0:
            os.close(self._lifeline)
            self._lifeline = -1

    def start(self) -> None:
        """Start the process ahead of the first analysis (it imports the engine)."""
        try:
            self._ensure()
        except OSError as error:  # pragma: no cover
            logger.warning("cannot start the analysis worker: %s", error)

    def call(self, kind: str, payload: Any, timeout: float | None) -> Any:
        proc = self._ensure()
        self._reason = None
        if self._ready is not proc:
            # A new process first imports the engine; that is not the analysis' time.
            try:
                assert proc.stdout is not None
                if _read(proc.stdout) != "ready":
                    raise EOFError("unexpected greeting")
            except (EOFError, OSError, pickle.UnpicklingError, struct.error) as error:
                self._discard(proc)
                raise WorkerAborted(self._reason or "crashed") from error
            self._ready = proc
        timer = threading.Timer(timeout, self.kill, args=("timeout",)) if timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            assert proc.stdin is not None and proc.stdout is not None
            _write(proc.stdin, (kind, payload))
            result = _read(proc.stdout)
        except (EOFError, OSError, pickle.UnpicklingError, struct.error) as error:
            reason = self._reason or "crashed"
            logger.info("analysis worker stopped (%s): %s", reason, error)
            self._discard(proc)
            raise WorkerAborted(reason) from error
        finally:
            if timer is not None:
                timer.cancel()
        if isinstance(result, _Failure):
            raise RuntimeError(result.message)
        return result

    def kill(self, reason: str) -> None:
        with self._lock:
            proc = self._proc
        if proc is not None and proc.poll() is None:
            self._reason = reason
            try:
                proc.kill()
            except OSError:  # pragma: no cover
                pass

    def _discard(self, proc: subprocess.Popen) -> None:
        with self._lock:
            if self._proc is proc:
                self._proc = None
        try:
            proc.kill()
            proc.wait(timeout=5)
        except (OSError, subprocess.TimeoutExpired):  # pragma: no cover
            pass

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is not None:
            try:
                if proc.stdin is not None:
                    proc.stdin.close()
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                proc.kill()
        with self._lock:
            self._close_lifeline()


# ---- the child ----------------------------------------------------------------------------------


class IdleCollector:
    """Full garbage collections between requests, never in the middle of an analysis.

    A full collection visits every object the process holds — the libcst trees of the documents it
    keeps — and takes 100–250 ms once a 3,000-line file is open: paid inside an analysis, it is the
    slowest edit-to-diagnostics there is. Automatic collection is left to the young generations; the
    oldest is collected by a background thread once the worker has been idle for ``idle`` seconds,
    or at once after ``every`` requests without such a pause (so memory stays bounded)."""

    def __init__(self, idle: float = 0.1, every: int = 25) -> None:
        self.idle = idle
        self.every = every
        self._lock = threading.Lock()
        self._wakeup = threading.Event()
        self._busy = False
        self._pending = 0  # requests answered since the last full collection
        self._last_answer = 0.0
        gc.set_threshold(*gc.get_threshold()[:2], 1 << 30)  # no automatic full collections
        threading.Thread(target=self._run, name="torchsanity-gc", daemon=True).start()

    def request_started(self) -> None:
        with self._lock:
            self._busy = True

    def request_answered(self) -> None:
        with self._lock:
            self._busy = False
            self._pending += 1
            self._last_answer = time.monotonic()
            overdue = self._pending >= self.every
            if overdue:
                self._pending = 0
        if overdue:
            gc.collect()
        else:
            self._wakeup.set()

    def _run(self) -> None:
        while True:
            self._wakeup.wait()
            self._wakeup.clear()
            while True:
                with self._lock:
                    if self._busy or not self._pending:
                        break
                    quiet = time.monotonic() - self._last_answer
                    if quiet >= self.idle:
                        self._pending = 0
                if quiet >= self.idle:
                    gc.collect()
                    break
                time.sleep(self.idle - quiet)



def _tie_to_server() -> None:
    """End this process when the server dies: a parent-death signal (SIGKILL), and a thread watching the
    lifeline pipe for the end-of-file the server's death causes (also where there is no such signal)."""
    if len(sys.argv) < 3:
        return
    tie = json.loads(sys.argv[2])
    if not die_with_parent(int(tie["parent"])):
        os._exit(0)  # the server died before we were tied to it
    if tie["lifeline"] >= 0:
        watch_parent(int(tie["lifeline"]), lambda: os._exit(0))


def _serve() -> None:
    _tie_to_server()
    out = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a stray print goes to stderr, never into the answer pipe
    inp = sys.stdin.buffer

    from .lsp_analysis import LiveDocuments, Projects, fix_all_edits, run_analysis

    projects = Projects()
    live = LiveDocuments()
    try:  # import the rules and warm the parser before saying ready
        from ..analyzers import analyze_source

        analyze_source("import torch\nfor x in y:\n    pass\n", "<warm-up>")
    except Exception:  # noqa: BLE001 - the first real request will report what is wrong
        pass
    _write(out, "ready")

    collector = IdleCollector()
    while True:
        try:
            kind, payload = _read(inp)
        except EOFError:
            return
        collector.request_started()
        try:
            if kind == "analyse":
                snapshot = payload
                analysis = run_analysis(replace(snapshot, project=projects.for_snapshot(snapshot)), live)
                analysis.snapshot = replace(analysis.snapshot, project=None, overlay=None)  # not sent back
                result: Any = analysis
            elif kind == "fix":
                analysis = payload
                analysis.snapshot = replace(analysis.snapshot, project=projects.for_snapshot(analysis.snapshot))
                result = fix_all_edits(analysis)
            else:
                result = _Failure(f"unknown request {kind!r}")
        except BaseException as error:  # noqa: BLE001 - answer, never die on one request
            result = _Failure(f"{type(error).__name__}: {error}")
        _write(out, result)
        collector.request_answered()


if __name__ == "__main__":
    _serve()
