"""The ``torchsanity/runProbe`` request (also the ``torchsanity.runProbe`` command).

Params (JSON object): ``uri`` (the training script, required), ``checks`` (list of check ids),
``args`` (the script's arguments), ``python`` (the interpreter to run it with: the user's, with their
torch; default the server's), ``timeout`` (seconds), ``device`` (``auto`` | ``cpu`` | ``cuda``),
``steps``, ``entry`` (``pkg.mod:fn``), ``cwd``, ``step`` (probe the N-th training step), ``batchDim`` (the
inputs' batch dimension), ``allowMixing`` (the model mixes samples on purpose), ``checkBudget`` (seconds each
training check may run) — the CLI's ``--step``, ``--batch-dim``, ``--allow-mixing``, ``--check-budget`` — and
``workDoneToken``.

The harness (:func:`torchsanity.server.probe_runner.run_probe`) blocks, so it runs in a thread; its
events become ``$/progress`` reports on the client's work-done token, or on one the server creates.

Cancellation: a ``$/cancelRequest`` for the request, or a ``window/workDoneProgress/cancel`` for its
token, sets the harness' cancel event, which kills the whole child process tree; the handler then
waits for the harness to return (pygls does not stop a running handler by itself).

One probe per document: a second request for the same document **cancels** the running one (whose
request answers ``{"status": "superseded"}``) and starts afresh — the newer request is the one that
matches the code on screen. Shutdown / exit cancel every running probe and wait for the trees to die.

Trust: the probe runs the user's code, so it is refused (:class:`UntrustedWorkspace`, code -32803) while the
client says the workspace is untrusted. The manager sees the server only through :class:`ProbeHost`.

Results: diagnostics with source ``torchsanity-probe`` on the lines the checks name (``fail`` and
``error`` as errors, ``warn`` as warnings; sentences, see :mod:`.lsp_probe_diagnostics`), dropped when the line
they point at changes, linked to a static finding that names the same cause, with code actions where the fix is
clear (:mod:`.lsp_probe_actions`); and a ``torchsanity/probeReport`` notification
``{"uri", "status", "exitCode", "report"}``. The request answers the same object. ``torchsanity/renderReport``
``{"report", "nonce", "cspSource", "chartUri"}`` answers ``{"html"}``: the report drawn by the one renderer
(:func:`~torchsanity.server.probe_report.render_html`) for a VS Code webview.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams, JsonRpcInternalError
from pygls.progress import Progress
from pygls.uris import from_fs_path, to_fs_path

from . import lsp_probe_diagnostics as probe_diagnostics
from .lsp_jobs import Job, JobManager, await_runner, call_threadsafe
from .lsp_probe_actions import action_data
from .lsp_settings import Settings

logger = logging.getLogger(__name__)

REPORT_NOTIFICATION = "torchsanity/probeReport"
RUN_PROBE_REQUEST = "torchsanity/runProbe"
RUN_PROBE_COMMAND = "torchsanity.runProbe"
RENDER_REPORT_REQUEST = "torchsanity/renderReport"
_TRACEBACK_FRAME = re.compile(r'File "(.+?)", line (\d+)')
_STEP_REPORT_INTERVAL = 0.1  # seconds between two step reports of one probe

_STATUS_SEVERITY = {
    "fail": types.DiagnosticSeverity.Error,
    "error": types.DiagnosticSeverity.Error,
    "warn": types.DiagnosticSeverity.Warning,
}


@dataclass
class ProbeParams:
    uri: str
    script: str
    checks: list[str] | None = None
    args: list[str] = field(default_factory=list)
    python: str | None = None
    timeout: float | None = None
    device: str = "auto"
    steps: int | None = None
    entry: str | None = None
    cwd: str | None = None
    step: int | None = None
    batch_dim: int | None = None
    allow_mixing: bool = False
    check_budget: float | None = None
    token: types.ProgressToken | None = None

    @classmethod
    def parse(cls, raw: Any) -> "ProbeParams":
        if not isinstance(raw, dict):
            raise JsonRpcInvalidParams(f"{RUN_PROBE_REQUEST} expects an object with a `uri`")
        uri = raw.get("uri")
        if not isinstance(uri, str) or not uri:
            raise JsonRpcInvalidParams("`uri` (the training script) is required")
        script = to_fs_path(uri) if uri.startswith("file:") else None
        if not script:
            raise JsonRpcInvalidParams(f"`uri` must be a file URI, got {uri!r}")

        def str_list(name: str) -> list[str] | None:
            value = raw.get(name)
            if value is None:
                return None
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise JsonRpcInvalidParams(f"`{name}` must be a list of strings")
            return list(value)

        def opt(name: str, kinds: tuple[type, ...]) -> Any:
            value = raw.get(name)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise JsonRpcInvalidParams(f"`{name}` has the wrong type")
            return value

        device = opt("device", (str,)) or "auto"
        if device not in ("auto", "cpu", "cuda"):
            raise JsonRpcInvalidParams("`device` must be auto, cpu or cuda")
        timeout = opt("timeout", (int, float))
        steps = opt("steps", (int,))
        step = opt("step", (int,))
        if step is not None and step < 1:
            raise JsonRpcInvalidParams("`step` counts training steps from 1")
        batch_dim = opt("batchDim", (int,))
        if batch_dim is not None and batch_dim < 0:
            raise JsonRpcInvalidParams("`batchDim` must be 0 or more")
        allow_mixing = raw.get("allowMixing", False)
        if not isinstance(allow_mixing, bool):
            raise JsonRpcInvalidParams("`allowMixing` must be true or false")
        check_budget = opt("checkBudget", (int, float))
        if check_budget is not None and not check_budget > 0:
            raise JsonRpcInvalidParams("`checkBudget` must be more than 0 seconds")
        token = raw.get("workDoneToken")
        if token is not None and (not isinstance(token, (str, int)) or isinstance(token, bool)):
            raise JsonRpcInvalidParams("`workDoneToken` must be a string or an integer")
        return cls(
            uri=uri,
            script=str(Path(script)),
            checks=str_list("checks"),
            args=str_list("args") or [],
            python=opt("python", (str,)) or None,
            timeout=float(timeout) if timeout is not None else None,
            device=device,
            steps=steps,
            entry=opt("entry", (str,)) or None,
            cwd=opt("cwd", (str,)) or None,
            step=step,
            batch_dim=batch_dim,
            allow_mixing=allow_mixing,
            check_budget=float(check_budget) if check_budget is not None else None,
            token=token,
        )


@dataclass
class ProbeJob(Job):
    params: ProbeParams
    checks_total: int = 0
    checks_done: int = 0
    last_step_report: float = 0.0


def _load_run_probe() -> Callable[..., Any]:
    from .probe_runner import run_probe  # the harness (lands separately)

    return run_probe


def _call_run_probe(run_probe: Callable[..., Any], params: ProbeParams, cwd: str, on_event, cancel) -> Any:
    kwargs: dict[str, Any] = {
        "python": params.python,
        "checks": params.checks,
        "steps": params.steps,
        "device": params.device,
        "timeout": params.timeout,
        "entry": params.entry,
        "cwd": cwd,
        "step": params.step,
        "batch_dim": params.batch_dim,
        "allow_mixing": params.allow_mixing,
        "check_budget": params.check_budget,
        "on_event": on_event,
        "cancel": cancel,
    }
    try:
        accepted = inspect.signature(run_probe).parameters
        if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values()):
            kwargs = {k: v for k, v in kwargs.items() if k in accepted}
    except (TypeError, ValueError):  # pragma: no cover
        pass
    return run_probe(params.script, tuple(params.args), **kwargs)


class UntrustedWorkspace(JsonRpcException):
    """A probe (which runs the user's code) asked for in a workspace the client does not trust."""

    CODE = -32803  # LSP RequestFailed
    MESSAGE = "the workspace is not trusted: torchsanity does not run its code, so the probe is disabled"

    def __init__(self) -> None:
        super().__init__(data={"reason": "untrusted"})


@dataclass(frozen=True)
class ProbeHost:
    """What the probe manager needs from the server, and nothing more."""

    notify: Callable[[str, Any], None]  # send a notification to the client
    log: Callable[[str], None]  # a line in the client's log
    republish: Callable[[str], None]  # publish a document's diagnostics again (the probe's included)
    client_text: Callable[[str], str | None]  # a document's text as the client has it, else from disk
    position_encoding: Callable[[], str]
    folder_for_path: Callable[[str], str | None]  # the workspace folder of a path: the probe's default cwd
    supports_progress: Callable[[], bool]  # whether the server may create work-done progress tokens
    progress: Progress  # pygls' work-done progress (create, begin, report, end)
    trusted: Callable[[], bool]  # whether the client trusts the workspace
    static_diagnostics: Callable[[str], list] = lambda uri: []  # a document's static diagnostics (for agreement)
    settings_for: Callable[[str], Settings] = lambda path: Settings()  # the editor's settings for a path's folder
    settings_ready: asyncio.Event | None = None  # set once the client's settings were read (None: no settings)


class ProbeManager(JobManager[ProbeJob]):
    """Runs probes, one per document, and turns their results into diagnostics and notifications."""

    def __init__(self, host: ProbeHost) -> None:
        super().__init__(host, "probe")
        self._owned: dict[str, set[str]] = {}  # script URI -> URIs its last report put diagnostics on

    # ---- the request ----------------------------------------------------------------------------

    async def run(self, raw_params: Any, request_id: Any) -> dict:
        if not self.host.trusted():
            raise UntrustedWorkspace()
        params = ProbeParams.parse(raw_params)
        try:
            run_probe = _load_run_probe()
        except ImportError as error:
            raise JsonRpcInternalError(f"the probe harness is not available: {error}") from error
        if not Path(params.script).is_file():
            raise JsonRpcInvalidParams(f"no such file: {params.script}")

        job = ProbeJob(params=params, request_id=request_id)
        job.checks_total = len(params.checks) if params.checks else 0
        await self._start(job)
        loop = asyncio.get_running_loop()
        try:
            await self._begin_progress(job, 0)
            cwd = params.cwd or self.host.folder_for_path(params.script) or str(Path(params.script).parent)

            def on_event(event: dict) -> None:
                call_threadsafe(loop, self._on_event, job, event)

            future = loop.run_in_executor(
                self._pool, _call_run_probe, run_probe, params, cwd, on_event, job.cancel
            )
            try:
                outcome = await await_runner(future, job.cancel)
            except asyncio.CancelledError:  # $/cancelRequest: the harness was told to stop and waited for
                self._end_progress(job, "cancelled")
                self._send_report(job, "cancelled", None, None)
                raise
            except ValueError as error:  # the harness refuses its arguments (unknown check, steps < 2)
                self._end_progress(job, f"invalid: {error}")
                raise JsonRpcInvalidParams(str(error)) from error
            except Exception as error:
                logger.exception("probe harness failed")
                if job.cancel.is_set():
                    return self._finish(job, "superseded" if job.superseded else "cancelled", None, None)
                self.host.log(f"torchsanity probe of {params.script} failed: {type(error).__name__}: {error}")
                self._end_progress(job, f"failed: {error}")
                raise JsonRpcInternalError(f"probe harness failed: {type(error).__name__}: {error}") from error
            report = getattr(outcome, "report", None)
            exit_code = getattr(outcome, "exit_code", None)
            if job.cancel.is_set():
                return self._finish(job, "superseded" if job.superseded else "cancelled", report, exit_code)
            self._publish(job, report if isinstance(report, dict) else {})
            return self._finish(job, "completed", report, exit_code)
        finally:
            self._forget(job)

    def _finish(self, job: ProbeJob, status: str, report: Any, exit_code: Any) -> dict:
        summary = status
        if status == "completed" and isinstance(report, dict):
            statuses = [c.get("status") for c in report.get("checks", []) if isinstance(c, dict)]
            counts = {s: statuses.count(s) for s in ("pass", "warn", "fail", "error", "skip") if statuses.count(s)}
            summary = ", ".join(f"{n} {s}" for s, n in counts.items()) or "no checks ran"
        self._end_progress(job, summary)
        return self._send_report(job, status, report, exit_code)

    def _send_report(self, job: ProbeJob, status: str, report: Any, exit_code: Any) -> dict:
        result = {"uri": job.params.uri, "status": status, "exitCode": exit_code, "report": report}
        self.host.notify(REPORT_NOTIFICATION, result)
        return result

    # ---- progress -------------------------------------------------------------------------------

    def _report(self, job: ProbeJob, message: str) -> None:
        if job.token is None:
            return
        percentage = None
        if job.checks_total:
            percentage = min(99, int(100 * job.checks_done / job.checks_total))
        self.host.progress.report(
            job.token, types.WorkDoneProgressReport(message=message, percentage=percentage, cancellable=True)
        )

    def _on_event(self, job: ProbeJob, event: dict) -> None:
        if job.token is None or not isinstance(event, dict):
            return
        kind = event.get("event")
        check = event.get("check") or ""
        if kind in ("start", "probe-start") and isinstance(event.get("checks"), list) and not job.checks_total:
            job.checks_total = len(event["checks"])
            self._report(job, "running " + ", ".join(map(str, event["checks"])))
        elif kind == "check-start":
            self._report(job, f"{check}…")
        elif kind == "step":
            now = time.monotonic()
            if now - job.last_step_report < _STEP_REPORT_INTERVAL:
                return
            job.last_step_report = now
            step = event.get("step")
            total = event.get("steps") or event.get("total")
            text = f"step {step}/{total}" if total else f"step {step}"
            self._report(job, f"{check}: {text}" if check else text)
        elif kind == "check-end":
            job.checks_done += 1
            self._report(job, f"{check}: {event.get('status', 'done')}")
        elif isinstance(event.get("message"), str):
            self._report(job, event["message"])

    # ---- results as diagnostics -----------------------------------------------------------------

    def _publish(self, job: ProbeJob, report: dict) -> None:
        script_uri = job.params.uri
        touched = set(self._owned.get(script_uri, set()))
        for uri in touched:
            self.diagnostics.pop(uri, None)
        new: dict[str, list[types.Diagnostic]] = {}
        for check in report.get("checks", []) or []:
            if not isinstance(check, dict):
                continue
            severity = _STATUS_SEVERITY.get(str(check.get("status")))
            line = check.get("line")
            if severity is None or not isinstance(line, int) or isinstance(line, bool) or line < 1:
                continue
            path = check.get("path")
            if isinstance(path, str) and path:
                if not Path(path).is_absolute():
                    path = str(Path(job.params.script).parent / path)
                uri = script_uri if Path(path).resolve() == Path(job.params.script).resolve() else from_fs_path(path)
            else:
                uri = script_uri
            if uri is None:
                continue
            diagnostic = self._diagnostic(uri, check, line, severity, action_data(check, report))
            if not probe_diagnostics.same_line_as_run(diagnostic, path or job.params.script,
                                                      self.host.position_encoding()):
                continue  # the buffer changed that line while the probe ran: it speaks of code that is gone
            new.setdefault(uri, []).append(diagnostic)
        script_error = self._script_error(job, report)
        if script_error is not None:
            uri, diagnostic = script_error
            new.setdefault(uri, []).append(diagnostic)
        for uri, diagnostics in new.items():
            static = self.host.static_diagnostics(uri)
            self.diagnostics[uri] = [probe_diagnostics.with_agreement(d, uri, static) for d in diagnostics]
        self._owned[script_uri] = set(new)
        for uri in touched | set(new):
            self.host.republish(uri)

    def _script_error(self, job: ProbeJob, report: dict) -> tuple[str, types.Diagnostic] | None:
        """The script's own exception, on the innermost line of the user's code its traceback names."""
        error = report.get("error")
        if not isinstance(error, dict) or error.get("source") not in ("script", "entry"):
            return None
        frames = _TRACEBACK_FRAME.findall(str(error.get("traceback") or ""))
        if not frames:
            return None
        script = Path(job.params.script).resolve()
        chosen = next(((p, n) for p, n in reversed(frames) if Path(p).resolve() == script), frames[-1])
        path, line = chosen[0], int(chosen[1])
        uri = job.params.uri if Path(path).resolve() == script else from_fs_path(path)
        if uri is None:
            return None
        check = {
            "id": "script-error",
            "status": "error",
            "message": f"the script raised {error.get('type', 'an exception')}: {error.get('message', '')}".rstrip(": "),
        }
        return uri, self._diagnostic(uri, check, line, types.DiagnosticSeverity.Error)

    def _diagnostic(self, uri: str, check: dict, line: int, severity: types.DiagnosticSeverity,
                    data: dict | None = None) -> types.Diagnostic:
        return probe_diagnostics.diagnostic(check, line, severity, self.host.client_text(uri),
                                            self.host.position_encoding(), data)

    def prune(self, uri: str, text: str) -> bool:
        """Drop the probe diagnostics of ``uri`` whose line no longer reads as when the probe ran (they speak of
        code that changed); whether any was dropped."""
        kept = [d for d in self.diagnostics.get(uri, [])
                if probe_diagnostics.still_current(d, text, self.host.position_encoding())]
        if len(kept) == len(self.diagnostics.get(uri, [])):
            return False
        self.diagnostics[uri] = kept
        return True

    def clear_for(self, uri: str) -> None:
        """Forget the probe diagnostics a closed document's last probe left on itself."""
        self.diagnostics.pop(uri, None)


def render_report(raw: Any) -> dict:
    """``torchsanity/renderReport``: ``{"report", "nonce", "cspSource", "chartUri"}`` → ``{"html"}``, the report
    drawn for a VS Code webview by the renderer the CLI's HTML file comes from."""
    from ..probes.report import ReportError, parse_report
    from .probe_report import render_html
    from .report_page import webview

    if not isinstance(raw, dict) or not isinstance(raw.get("report"), dict):
        raise JsonRpcInvalidParams(f"{RENDER_REPORT_REQUEST} expects an object with a `report`")
    try:
        report = parse_report(raw["report"])
        shell = webview(str(raw.get("nonce") or ""), str(raw.get("cspSource") or ""), str(raw.get("chartUri") or ""))
    except (ReportError, ValueError) as error:
        raise JsonRpcInvalidParams(str(error)) from error
    return {"html": render_html(report, shell)}
