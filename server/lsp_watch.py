"""The ``torchsanity/watch`` request: watch a training run from the editor (``torchsanity watch`` in the server).

Params (JSON object): ``uri`` (the training script, required), ``args`` (the script's arguments), ``steps``,
``epochs``, ``timeout`` (seconds), ``every`` (per-layer statistics every K steps), ``device`` (``auto`` | ``cpu``
| ``cuda``), ``python`` (the interpreter to run it with: the user's; default the server's), ``cwd``,
``workDoneToken``. ``every``, ``steps``, ``epochs`` and ``timeout`` not given (or null) are taken from the
``watch.*`` settings of the script's workspace folder (:mod:`.lsp_settings`).

While it runs:
- ``$/progress`` on the client's work-done token (or one the server creates): ``step N · loss X`` (a percentage
  when ``steps`` is given);
- ``torchsanity/watchUpdate`` notifications, at most every quarter second: ``{"uri", "records": [...],
  "verdicts": [...], "step", "loss"}`` — the new metrics records exactly as ``probes/watch.py`` writes them (one
  JSON object per record: ``kind`` = ``start`` | ``layers`` | ``step`` | ``sample`` | ``scheduler`` | ``end`` |
  …) and the verdicts that fired since the last update; a last one with ``"done": true`` and the status;
- each verdict as a diagnostic (source ``torchsanity-watch``) on the line it concerns — the optimizer's ``lr=``,
  the loss, the layer, the DataLoader (:mod:`~torchsanity.server.watch_locate`); a verdict that cannot be placed
  for sure gets none.

Stopping: ``$/cancelRequest`` for the request, ``window/workDoneProgress/cancel`` for its token, or the
``torchsanity/watchStop`` notification ``{"uri"}`` stop the run: the whole process tree ends and the request
answers with the report so far (``status`` ``stopped``). One watch per script: a second request for the same
script stops the first (``superseded``). Refused while the workspace is untrusted (error -32803), like the probe.

The request answers ``{"uri", "status", "exitCode", "report"}`` (the report of ``torchsanity watch --format
json``). ``torchsanity/renderWatch`` ``{"report" (null while the run goes), "script", "nonce", "cspSource",
"chartUri"}`` answers ``{"html"}``: the page for a VS Code webview, drawn by the renderer of the CLI's report.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams, JsonRpcInternalError
from pygls.uris import to_fs_path

from .lsp_jobs import Job, JobManager, await_runner, call_threadsafe
from .lsp_positions import LineIndex, units
from .lsp_probe import ProbeHost, UntrustedWorkspace
from .lsp_settings import Settings
from .watch_locate import ScriptIndex, locate

logger = logging.getLogger(__name__)

WATCH_REQUEST = "torchsanity/watch"
WATCH_STOP_NOTIFICATION = "torchsanity/watchStop"
WATCH_UPDATE_NOTIFICATION = "torchsanity/watchUpdate"
RENDER_WATCH_REQUEST = "torchsanity/renderWatch"
WATCH_SOURCE = "torchsanity-watch"
UPDATE_INTERVAL = 0.25  # seconds between two updates of one watch
_ERRORS = ("non-finite", "divergence")  # verdicts shown as errors; the others as warnings


@dataclass
class WatchParams:
    uri: str
    script: str
    args: list[str] = field(default_factory=list)
    steps: int | None = None
    epochs: int | None = None
    timeout: float | None = None
    every: int | None = None
    device: str = "auto"
    python: str | None = None
    cwd: str | None = None
    token: types.ProgressToken | None = None

    @classmethod
    def parse(cls, raw: Any) -> "WatchParams":
        if not isinstance(raw, dict):
            raise JsonRpcInvalidParams(f"{WATCH_REQUEST} expects an object with a `uri`")
        uri = raw.get("uri")
        script = to_fs_path(uri) if isinstance(uri, str) and uri.startswith("file:") else None
        if not script:
            raise JsonRpcInvalidParams(f"`uri` must be the training script's file URI, got {uri!r}")

        def opt(name: str, kinds: tuple[type, ...]) -> Any:
            value = raw.get(name)
            if value is not None and (not isinstance(value, kinds) or isinstance(value, bool)):
                raise JsonRpcInvalidParams(f"`{name}` has the wrong type")
            return value

        args = raw.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise JsonRpcInvalidParams("`args` must be a list of strings")
        device = opt("device", (str,)) or "auto"
        if device not in ("auto", "cpu", "cuda"):
            raise JsonRpcInvalidParams("`device` must be auto, cpu or cuda")
        timeout = opt("timeout", (int, float))
        token = raw.get("workDoneToken")
        if token is not None and (not isinstance(token, (str, int)) or isinstance(token, bool)):
            raise JsonRpcInvalidParams("`workDoneToken` must be a string or an integer")
        return cls(uri=uri, script=str(Path(script)), args=list(args), steps=opt("steps", (int,)),
                   epochs=opt("epochs", (int,)), timeout=float(timeout) if timeout is not None else None,
                   every=opt("every", (int,)), device=device, python=opt("python", (str,)) or None,
                   cwd=opt("cwd", (str,)) or None, token=token)

    def with_settings(self, settings: Settings) -> "WatchParams":
        """These params, with the ``watch.*`` settings for what the request left out."""
        return replace(self, every=_first(self.every, settings.watch_every),
                       steps=_first(self.steps, settings.watch_steps),
                       epochs=_first(self.epochs, settings.watch_epochs),
                       timeout=_first(self.timeout, settings.watch_timeout))


def _first(given: Any, default: Any) -> Any:
    return default if given is None else given


@dataclass
class WatchJob(Job):
    params: WatchParams
    records: list[dict] = field(default_factory=list)  # not yet sent
    verdicts: list[dict] = field(default_factory=list)  # not yet sent
    placed: list[tuple[dict, Any]] = field(default_factory=list)  # every verdict with its place (or None)
    step: int = 0
    loss: Any = None
    optimizer: str | None = None
    flush_handle: asyncio.TimerHandle | None = None
    index: ScriptIndex | None = None


class RuntimeDiagnostics:
    """The probe's and the watch's diagnostics as one mapping for the diagnostic store (which moves them through
    edits and publishes them with the static ones); each part stays with its manager, told apart by source."""

    def __init__(self, probe: dict[str, list[types.Diagnostic]], watch: dict[str, list[types.Diagnostic]]):
        self.probe, self.watch = probe, watch

    def get(self, uri: str, default=None) -> list[types.Diagnostic] | None:
        found = self.probe.get(uri, []) + self.watch.get(uri, [])
        return found or default

    def __getitem__(self, uri: str) -> list[types.Diagnostic]:
        return self.get(uri, [])

    def __setitem__(self, uri: str, diagnostics: list[types.Diagnostic]) -> None:
        self.watch[uri] = [d for d in diagnostics if d.source == WATCH_SOURCE]
        self.probe[uri] = [d for d in diagnostics if d.source != WATCH_SOURCE]


class WatchManager(JobManager[WatchJob]):
    """Runs watches, one per script, and streams their metrics and verdicts to the client."""

    def __init__(self, host: ProbeHost) -> None:
        super().__init__(host, "watch")

    # ---- stopping -------------------------------------------------------------------------------

    def stop(self, params: Any) -> None:
        """``torchsanity/watchStop``: ``{"uri"}``."""
        uri = params.get("uri") if isinstance(params, dict) else None
        job = self.by_uri.get(uri) if isinstance(uri, str) else None
        if job is not None:
            job.cancel.set()

    # ---- the request ----------------------------------------------------------------------------

    async def run(self, raw_params: Any, request_id: Any) -> dict:
        if not self.host.trusted():
            raise UntrustedWorkspace()
        params = WatchParams.parse(raw_params)
        params = params.with_settings(await self._settings(params.script))
        if not Path(params.script).is_file():
            raise JsonRpcInvalidParams(f"no such file: {params.script}")
        job = WatchJob(params=params, request_id=request_id)
        await self._start(job)
        self._clear(params.uri)
        loop = asyncio.get_running_loop()
        try:
            await self._begin_progress(job, 0 if params.steps else None)
            cwd = params.cwd or self.host.folder_for_path(params.script) or str(Path(params.script).parent)

            def on_records(records: list[dict]) -> None:
                call_threadsafe(loop, self._on_records, job, records)

            def on_verdict(verdict: dict) -> None:
                call_threadsafe(loop, self._on_verdict, job, verdict)

            future = loop.run_in_executor(self._pool, self._call, params, cwd, on_records, on_verdict, job.cancel)
            try:
                outcome = await await_runner(future, job.cancel)
            except asyncio.CancelledError:  # $/cancelRequest: the run was told to stop and waited for; answer
                self._finish(job, "stopped", None, None)
                raise
            except ValueError as error:  # the runner refuses its arguments (--every 0, --steps 0)
                self._end_progress(job, f"invalid: {error}")
                raise JsonRpcInvalidParams(str(error)) from error
            except Exception as error:
                logger.exception("watch runner failed")
                self._end_progress(job, f"failed: {error}")
                raise JsonRpcInternalError(f"watch failed: {type(error).__name__}: {error}") from error
            status = "superseded" if job.superseded else ("stopped" if job.cancel.is_set() else "completed")
            if job.cancel.is_set():
                outcome.report["stopped"] = status
            return self._finish(job, status, outcome.report, outcome.exit_code)
        finally:
            if job.flush_handle is not None:
                job.flush_handle.cancel()
            self._forget(job)

    async def _settings(self, path: str) -> Settings:
        """The editor's settings for ``path``, once the client's settings were read (a request right after
        ``initialized`` waits for them, up to 10 s)."""
        ready = self.host.settings_ready
        if ready is not None and not ready.is_set():
            try:
                await asyncio.wait_for(ready.wait(), timeout=10)
            except asyncio.TimeoutError:
                logger.warning("watch: the client's settings did not arrive; using the defaults")
        return self.host.settings_for(path)

    @staticmethod
    def _call(params: WatchParams, cwd: str, on_records, on_verdict, cancel: threading.Event):
        from .watch_runner import watch

        kwargs: dict[str, Any] = {"steps": params.steps, "epochs": params.epochs, "timeout": params.timeout,
                                  "device": params.device, "python": params.python, "cwd": cwd,
                                  "on_records": on_records, "on_verdict": on_verdict, "cancel": cancel}
        if params.every is not None:
            kwargs["every"] = params.every
        return watch(params.script, params.args, **kwargs)

    def _finish(self, job: WatchJob, status: str, report: dict | None, exit_code: int | None) -> dict:
        self._flush(job)
        self.host.notify(WATCH_UPDATE_NOTIFICATION, {"uri": job.params.uri, "records": [], "verdicts": [],
                                                     "step": job.step, "loss": job.loss, "done": True,
                                                     "status": status, "exitCode": exit_code})
        verdicts = (report or {}).get("verdicts") or []
        self._end_progress(job, f"{status}: {job.step} step(s), "
                                f"{len(verdicts)} verdict(s)" if verdicts else f"{status}: {job.step} step(s)")
        return {"uri": job.params.uri, "status": status, "exitCode": exit_code, "report": report}

    # ---- updates --------------------------------------------------------------------------------

    def _on_records(self, job: WatchJob, records: list[dict]) -> None:
        job.records.extend(records)
        for record in records:
            if record.get("kind") == "step":
                job.step = record.get("step", job.step)
                job.loss = record.get("loss")
            elif record.get("kind") == "layers":
                job.optimizer = record.get("optimizer")
        self._schedule(job)

    def _on_verdict(self, job: WatchJob, verdict: dict) -> None:
        job.verdicts.append(verdict)
        self._place(job, verdict)
        self._flush(job)

    def _schedule(self, job: WatchJob) -> None:
        if job.flush_handle is None:
            job.flush_handle = asyncio.get_running_loop().call_later(UPDATE_INTERVAL, self._flush, job)

    def _flush(self, job: WatchJob) -> None:
        if job.flush_handle is not None:
            job.flush_handle.cancel()
            job.flush_handle = None
        if not job.records and not job.verdicts:
            return
        records, verdicts = job.records, job.verdicts
        job.records, job.verdicts = [], []
        self.host.notify(WATCH_UPDATE_NOTIFICATION, {"uri": job.params.uri, "records": records,
                                                     "verdicts": verdicts, "step": job.step, "loss": job.loss})
        if job.token is not None:
            budget = job.params.steps
            loss = job.loss if isinstance(job.loss, str) else (f"{job.loss:.4g}" if job.loss is not None else "—")
            self.host.progress.report(job.token, types.WorkDoneProgressReport(
                message=f"step {job.step} · loss {loss}" + (f" · {len(job.placed)} verdict(s)" if job.placed else ""),
                percentage=min(99, int(100 * job.step / budget)) if budget else None, cancellable=True))

    # ---- verdicts as diagnostics ----------------------------------------------------------------

    def _place(self, job: WatchJob, verdict: dict) -> None:
        uri = job.params.uri
        text = self.host.client_text(uri)
        place = None
        if text is not None:
            try:
                job.index = job.index or ScriptIndex(text)
                place = locate(job.index, verdict, job.optimizer)
            except (SyntaxError, ValueError):  # the buffer does not parse now: no place
                place = None
        job.placed.append((verdict, place))
        if place is None:
            return
        index = LineIndex(text, self.host.position_encoding())
        line_text = index.line_text(place.line - 1)
        severity = types.DiagnosticSeverity.Error if verdict.get("id") in _ERRORS else types.DiagnosticSeverity.Warning
        message = f"{verdict.get('message')} (step {verdict.get('step')}). What to do: {verdict.get('advice')}"
        diagnostic = types.Diagnostic(
            range=types.Range(
                start=types.Position(line=place.line - 1, character=units(line_text[:place.start], index.encoding)),
                end=types.Position(line=place.line - 1, character=units(line_text[:place.end], index.encoding))),
            message=message, severity=severity, code=str(verdict.get("id")), source=WATCH_SOURCE,
            data={"step": verdict.get("step"), "criterion": verdict.get("criterion"), "place": place.what})
        self.diagnostics.setdefault(uri, []).append(diagnostic)
        self.host.republish(uri)

    def _clear(self, uri: str) -> None:
        if self.diagnostics.pop(uri, None):
            self.host.republish(uri)

    def clear_for(self, uri: str) -> None:
        """Forget the watch diagnostics of a closed document."""
        self.diagnostics.pop(uri, None)


def render_watch(raw: Any) -> dict:
    """``torchsanity/renderWatch``: the watch page for a webview — live (empty charts, a Stop button) while
    ``report`` is null, else the finished report."""
    from .report_page import webview
    from .watch_report import render_html

    if not isinstance(raw, dict) or not (raw.get("report") is None or isinstance(raw.get("report"), dict)):
        raise JsonRpcInvalidParams(f"{RENDER_WATCH_REQUEST} expects an object with a `report` (or null)")
    try:
        shell = webview(str(raw.get("nonce") or ""), str(raw.get("cspSource") or ""), str(raw.get("chartUri") or ""))
    except ValueError as error:
        raise JsonRpcInvalidParams(str(error)) from error
    report = raw.get("report")
    live = report is None
    return {"html": render_html(report if not live else {"script": str(raw.get("script") or "script")}, shell,
                                live=live)}
