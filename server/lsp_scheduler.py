"""When each document is analysed: debounce, one analysis at a time, stale results dropped.

Each open document (or notebook) has a :class:`DocState` whose ``generation`` grows with every change.
A change schedules an analysis after the debounce (``torchsanity.debounceMs``; a burst of edits costs
one analysis of the final text); open and save analyse at once. Analyses run one at a time, in the
analysis worker process (:mod:`~torchsanity.server.lsp_worker`), from one thread, never on the event
loop. A result older than the document is dropped: the newer text's own analysis publishes. An
analysis of an outdated text that has run for more than 2 s is stopped outright, and one over its time
budget (``torchsanity.analysisTimeoutMs``) becomes one ``SAN000`` warning. Each analysis
records the project files it looked for; a change to one of them (another buffer's edit, a change on
disk) schedules the open documents that depend on it too, in the same debounce window.

The scheduler knows nothing of pygls: it takes the server's side through :class:`SchedulerHost`.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import Protocol

from lsprotocol import types

from .lsp_analysis import Analysis, LiveDocuments, Projects, Snapshot, fix_all_edits, run_analysis, stopped_analysis
from .lsp_settings import RUN_ON_SAVE, Settings
from .lsp_worker import AnalysisWorker, WorkerAborted

SETTINGS_WAIT = 3.0  # seconds an analysis waits for the client's settings at start-up
ABANDON_AFTER = 2.0  # seconds: a running analysis of an outdated text older than this is stopped


@dataclass
class DocState:
    """The scheduling state of one document (or notebook)."""

    key: str  # document URI, or notebook URI
    notebook: bool = False
    generation: int = 0
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task | None = None
    dirty: bool = False  # a timer fired while an analysis ran
    current: Analysis | None = None  # the analysis of the latest text published
    analyses: int = 0
    last_seconds: float = 0.0


class SchedulerHost(Protocol):
    """What the scheduler needs from the server."""

    settings_ready: asyncio.Event

    def snapshot(self, state: DocState) -> Snapshot | None: ...

    def settings_for(self, path: str) -> Settings: ...

    def accept(self, state: DocState, analysis: Analysis, settings: Settings) -> None: ...

    def log_once(self, message: str, key: str | None = None, kind: types.MessageType = ...) -> None: ...


class Analyser:
    """Runs analyses and fix-alls one at a time: in the worker process, or in this process' analysis
    thread with ``TORCHSANITY_LSP_WORKER=thread``."""

    def __init__(self) -> None:
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchsanity-analysis")
        use_thread = os.environ.get("TORCHSANITY_LSP_WORKER", "process") == "thread"
        self.worker: AnalysisWorker | None = None if use_thread else AnalysisWorker()
        self.live = LiveDocuments()  # used when analysing in the thread
        self.projects = Projects()  # used when analysing in the thread
        self._running: tuple[str, float] | None = None  # (state key, start) of the analysis under way

    @property
    def in_process(self) -> bool:
        return self.worker is None

    def start(self) -> None:
        if self.worker is not None:
            self.worker.start()

    def kill(self, reason: str) -> None:
        if self.worker is not None:
            self.worker.kill(reason)

    async def analyse(self, snapshot: Snapshot, timeout: float | None) -> Analysis:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._analyse, snapshot, timeout)

    async def fix_all(self, analysis: Analysis, timeout: float | None) -> dict | None:
        """``source.fixAll`` edits; raises :class:`WorkerAborted` / ``RuntimeError`` when stopped."""
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._fix, analysis, timeout)

    def abandon(self, key: str, reason: str, min_age: float = 0.0) -> None:
        """Stop the analysis of ``key`` under way (it analyses a text that is gone)."""
        running = self._running
        if self.worker is not None and running is not None and running[0] == key:
            if time.monotonic() - running[1] >= min_age:
                self.worker.kill(reason)

    def _analyse(self, snapshot: Snapshot, timeout: float | None) -> Analysis:
        self._running = (snapshot.key, time.monotonic())
        try:
            if self.worker is None:
                return run_analysis(replace(snapshot, project=self.projects.for_snapshot(snapshot)), self.live)
            return self.worker.call("analyse", snapshot, timeout)
        finally:
            self._running = None

    def _fix(self, analysis: Analysis, timeout: float | None) -> dict | None:
        if self.worker is None:
            return fix_all_edits(analysis)
        return self.worker.call("fix", analysis, timeout)


def timeout_of(settings: Settings) -> float | None:
    """The time budget of one analysis in seconds (None: none)."""
    return settings.analysis_timeout_ms / 1000.0 or None


class Scheduler:
    """The per-document analysis schedule."""

    def __init__(self, host: SchedulerHost, analyser: Analyser) -> None:
        self.host = host
        self.analyser = analyser
        self.docs: dict[str, DocState] = {}

    # ---- events ---------------------------------------------------------------------------------

    def opened(self, key: str, notebook: bool = False) -> DocState:
        state = self.docs.get(key)
        if state is None:
            state = self.docs[key] = DocState(key=key, notebook=notebook)
        self.now(key)
        return state

    def changed(self, key: str, path: str) -> None:
        """The text changed: analyse after the debounce (or not at all until saved, with ``onSave``)."""
        state = self.docs.get(key)
        if state is None:
            return
        state.generation += 1
        settings = self.host.settings_for(path)
        if settings.run == RUN_ON_SAVE:
            return
        self.analyser.abandon(key, "superseded", min_age=ABANDON_AFTER)
        self._schedule(state, settings.debounce_ms / 1000.0)
        self.files_changed([path], settings.debounce_ms / 1000.0, exclude=key)

    def files_changed(self, paths: list[str], delay: float = 0.0, exclude: str | None = None) -> None:
        """Files changed (a buffer edit, a change on disk, a closed buffer): every other open document
        whose last analysis looked for one of them is analysed again after ``delay`` — in the same
        debounce window as the edit. When nothing depends on them, nothing runs."""
        for state in self.dependents(paths, exclude):
            state.generation += 1
            self._schedule(state, delay)

    def dependents(self, paths: list[str], exclude: str | None = None) -> list[DocState]:
        """The open documents (but ``exclude``) whose last analysis looked for one of ``paths``."""
        candidates = [
            state for state in self.docs.values()
            if state.key != exclude and state.current is not None and state.current.dependencies
        ]
        if not candidates:
            return []
        changed = {os.path.realpath(path) for path in paths}
        return [state for state in candidates if not changed.isdisjoint(state.current.dependencies)]

    def now(self, key: str) -> None:
        """Analyse at once (open, save, settings or project changed, notebook cells moved)."""
        state = self.docs.get(key)
        if state is not None:
            state.generation += 1
            self._schedule(state, 0)

    def all_now(self) -> None:
        for key in list(self.docs):
            self.now(key)

    def closed(self, key: str) -> DocState | None:
        self.analyser.abandon(key, "closed")
        state = self.docs.pop(key, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()
        return state

    async def fresh(self, key: str) -> Analysis | None:
        """The analysis of the document's current text (analysing now if it is not there yet)."""
        state = self.docs.get(key)
        for _ in range(10):
            if state is None or self.docs.get(key) is not state:
                return None
            if state.current is not None and state.current.generation == state.generation:
                return state.current
            if state.timer is not None:
                state.timer.cancel()
                state.timer = None
            if state.task is None or state.task.done():
                self._start(key)
            else:
                state.dirty = True
            task = state.task
            if task is not None:
                await asyncio.shield(task)
        return None

    # ---- running --------------------------------------------------------------------------------

    def _schedule(self, state: DocState, delay: float) -> None:
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if delay <= 0:
            self._start(state.key)
        else:
            state.timer = asyncio.get_running_loop().call_later(delay, self._start, state.key)

    def _start(self, key: str) -> None:
        state = self.docs.get(key)
        if state is None:
            return
        state.timer = None
        if state.task is not None and not state.task.done():
            state.dirty = True
            return
        state.task = asyncio.get_running_loop().create_task(self._analyse_and_accept(state))

    async def _analyse_and_accept(self, state: DocState) -> None:
        host = self.host
        if not host.settings_ready.is_set():
            try:
                await asyncio.wait_for(host.settings_ready.wait(), timeout=SETTINGS_WAIT)
            except asyncio.TimeoutError:
                pass
        while True:
            state.dirty = False
            snapshot = host.snapshot(state)
            if snapshot is None or self.docs.get(state.key) is not state:
                return
            settings = host.settings_for(snapshot.path)
            timeout = timeout_of(settings)
            try:
                analysis = await self.analyser.analyse(snapshot, timeout)
            except WorkerAborted as aborted:
                if aborted.reason in ("superseded", "closed"):
                    if self.docs.get(state.key) is not state:
                        return
                    if state.dirty:
                        continue
                    return  # the newer text's timer will analyse it
                if aborted.reason == "timeout":
                    message = (
                        f"torchsanity stopped analysing this file after {timeout:g} s "
                        "(see the setting torchsanity.analysisTimeoutMs)"
                    )
                else:
                    message = "torchsanity's analysis process crashed on this file"
                host.log_once(f"{message}: {snapshot.path}", kind=types.MessageType.Warning)
                analysis = stopped_analysis(snapshot, message)
            except RuntimeError as error:  # the pool is shut down (exit), or the worker failed
                host.log_once(f"torchsanity: analysis failed: {error}")
                return
            state.analyses += 1
            state.last_seconds = analysis.seconds
            if self.docs.get(state.key) is not state:
                return  # closed meanwhile
            if state.dirty:
                continue  # the text changed and its timer fired while we ran: again, at once
            if snapshot.generation != state.generation:
                return  # a newer text is waiting for its debounce timer; it will publish
            state.current = analysis
            host.accept(state, analysis, settings)
            return
