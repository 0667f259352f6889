"""The torchsanity language server (pygls 2.x, stdio): ``torchsanity server``.

What it does, and the policies it keeps:

- **Diagnostics** for Python documents (language id ``python`` or a ``.py`` / ``.pyi`` path) on open,
  on change (debounced by ``torchsanity.debounceMs``: a burst of edits costs one analysis of the final
  text) and on save; with ``torchsanity.run = "onSave"`` only on open and save. Notebook documents are
  synced through LSP notebook sync; their Python code cells are analysed together as one program and
  each finding is published on the cell it starts in (:mod:`~torchsanity.server.lsp_notebook`).
- Analyses run one at a time in a worker process (:mod:`~torchsanity.server.lsp_worker`), driven from
  one server thread, never on the event loop: hover, code actions and probe requests are answered
  while a big file is being analysed. A result that is older than the document (the user typed on) is
  dropped, and the pending analysis of the newer text publishes; an analysis of an outdated text that
  has run for more than 2 s is stopped outright. An analysis over its time budget
  (``torchsanity.analysisTimeoutMs``, default 30 s) is stopped and reported as one warning
  (code ``analysis-timeout``). ``TORCHSANITY_LSP_WORKER=thread`` analyses in the server's thread instead.
- **Syntax errors keep the last good diagnostics**: while a file does not parse (half-typed code), the
  findings of the last text that parsed stay where they were, and the syntax error is added as an
  error diagnostic (code ``syntax-error``). Quick fixes are only offered on findings of the current
  text, so a stale finding never gets an edit applied to the wrong place.
- A rule that throws is skipped and logged to the client once (``window/logMessage``), never shown as
  a pop-up; pygls' default ``window/showMessage`` on handler errors is replaced by a log message.
- Code actions, hover: :mod:`~torchsanity.server.lsp_actions`. Settings:
  :mod:`~torchsanity.server.lsp_settings`. Probes: :mod:`~torchsanity.server.lsp_probe`. Positions
  are converted to the client's encoding (UTF-16 by default): :mod:`~torchsanity.server.lsp_positions`.
- ``torchsanity/serverStatus`` (request, no params) answers counters used by tests and benchmarks:
  analyses per document, the last analysis time, running probes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import attrs
from lsprotocol import types
from pygls.exceptions import JsonRpcException, JsonRpcInvalidParams
from pygls.lsp.server import LanguageServer
from pygls.protocol import LanguageServerProtocol, default_converter
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument, Workspace

from ..analyzers import Config, Project
from . import lsp_actions
from .lsp_analysis import (
    Analysis,
    Snapshot,
    file_path,
    fix_all_edits,
    LiveDocuments,
    run_analysis,
    stopped_analysis,
)
from .lsp_positions import normalize_encoding, split_lines_keepends
from .lsp_probe import RUN_PROBE_COMMAND, RUN_PROBE_REQUEST, ProbeManager
from .lsp_settings import SECTION, RUN_ON_SAVE, ProjectConfigs, Settings, to_plain
from .lsp_worker import AnalysisWorker, WorkerAborted

logger = logging.getLogger("torchsanity.server")

SERVER_STATUS_REQUEST = "torchsanity/serverStatus"
_RAW_METHODS = {RUN_PROBE_REQUEST, SERVER_STATUS_REQUEST}
_SETTINGS_WAIT = 3.0  # seconds an analysis waits for the client's settings at start-up
_ABANDON_AFTER = 2.0  # seconds: a running analysis of an outdated text older than this is stopped


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("torchsanity")
    except Exception:  # pragma: no cover
        return "0"


# ---- protocol: untyped custom requests, malformed messages, cancellation ------------------------


@attrs.define
class RawRequest:
    """A custom request whose params stay plain JSON (pygls would turn them into namedtuples)."""

    id: Any
    method: str
    jsonrpc: str
    params: Any = None


class _Answered:
    """A malformed request that has already been answered with an error."""

    jsonrpc = "answered"


def _converter():
    converter = default_converter()
    converter.register_structure_hook(RawRequest, lambda obj, cls: cls(**obj))
    return converter


class TorchSanityProtocol(LanguageServerProtocol):
    def get_message_type(self, method: str):
        if method in _RAW_METHODS:
            return RawRequest
        return super().get_message_type(method)

    def structure_message(self, data: dict[str, Any]):
        try:
            return super().structure_message(data)
        except JsonRpcException as error:
            # A request with params the server cannot read: answer it (the client is waiting for
            # this id) instead of leaving it unanswered, and go on with the next message.
            if isinstance(data, dict) and "id" in data and "method" in data:
                logger.warning("malformed %s request: %s", data.get("method"), error)
                self._send_response(
                    data["id"],
                    error=JsonRpcInvalidParams(f"invalid params for {data.get('method')}").to_response_error(),
                )
                return _Answered()
            raise

    def handle_message(self, message):
        if isinstance(message, _Answered):
            return
        if not hasattr(message, "jsonrpc"):
            logger.warning("ignoring a message that is not JSON-RPC: %r", message)
            return
        return super().handle_message(message)

    def _handle_cancel_notification(self, msg_id):
        server = self._server
        if isinstance(server, TorchSanityServer):
            server.probes.cancel_request(msg_id)
        return super()._handle_cancel_notification(msg_id)


# ---- workspace with LSP line semantics ----------------------------------------------------------


class _LspTextDocument(TextDocument):
    """pygls splits lines with ``str.splitlines``, which also breaks on form feeds and ``\\u2028``;
    LSP (and Python) only on ``\\r\\n``, ``\\r`` and ``\\n``. Incremental edits must agree with the client."""

    @property
    def lines(self):
        return tuple(split_lines_keepends(self.source))


class _LspWorkspace(Workspace):
    def _create_text_document(self, doc_uri, source=None, version=None, language_id=None):
        return _LspTextDocument(
            doc_uri,
            source=source,
            version=version,
            language_id=language_id,
            sync_kind=self._sync_kind,
            position_codec=self._position_codec,
        )


# ---- per-document state -------------------------------------------------------------------------


@dataclass
class DocState:
    key: str  # document URI, or notebook URI
    notebook: bool = False
    generation: int = 0
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task | None = None
    dirty: bool = False  # a timer fired while an analysis ran
    current: Analysis | None = None
    good: Analysis | None = None
    finding_diags: dict[str, list[types.Diagnostic]] = field(default_factory=dict)
    analyses: int = 0
    last_seconds: float = 0.0


class TorchSanityServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            name="torchsanity",
            version=_version(),
            protocol_cls=TorchSanityProtocol,
            converter_factory=_converter,
            text_document_sync_kind=types.TextDocumentSyncKind.Incremental,
            notebook_document_sync=types.NotebookDocumentSyncOptions(
                notebook_selector=[
                    types.NotebookDocumentFilterWithCells(
                        notebook="*", cells=[types.NotebookCellLanguage(language="python")]
                    )
                ],
                save=True,
            ),
        )
        self.docs: dict[str, DocState] = {}
        self.uris: dict[str, str] = {}  # unquoted URI -> the client's spelling
        self.static_diags: dict[str, list[types.Diagnostic]] = {}
        self.global_settings = Settings()
        self.init_settings: Settings | None = None
        self.folder_settings: dict[str, Settings] = {}
        self.settings_ready = asyncio.Event()
        self.configs = ProjectConfigs(on_error=self.log_once)
        self.projects: dict[str, Project] = {}
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="torchsanity-analysis")
        use_thread = os.environ.get("TORCHSANITY_LSP_WORKER", "process") == "thread"
        self.worker: AnalysisWorker | None = None if use_thread else AnalysisWorker()
        self.live = LiveDocuments()  # used when analysing in the thread
        self.project_generation = 0
        self._running: tuple[str, float] | None = None  # (state key, start) of the analysis under way
        self.probes = ProbeManager(self)
        self._logged: set[str] = set()
        self._published: dict[str, list[str]] = {}  # state key -> client URIs it published on

    # ---- logging: the client's output, never a pop-up ------------------------------------------

    def log(self, message: str, kind: types.MessageType = types.MessageType.Error) -> None:
        logger.log(logging.ERROR if kind == types.MessageType.Error else logging.INFO, "%s", message)
        try:
            self.window_log_message(types.LogMessageParams(type=kind, message=message))
        except Exception:  # noqa: BLE001 - the transport may be gone at exit
            pass

    def log_once(self, message: str, key: str | None = None, kind=types.MessageType.Error) -> None:
        key = key or message
        if key in self._logged:
            return
        self._logged.add(key)
        self.log(message, kind)

    def report_server_error(self, error: Exception, source) -> None:
        """pygls shows handler errors as ``window/showMessage`` pop-ups; log them instead. A failed
        request already carries its error in the response: that one goes to stderr only."""
        from pygls.exceptions import FeatureRequestError

        if source is FeatureRequestError:
            logger.info("request failed: %s", error)
            return
        self.log(f"torchsanity server error ({getattr(source, '__name__', source)}): {error}")

    # ---- client facts ---------------------------------------------------------------------------

    def _caps(self) -> types.ClientCapabilities | None:
        try:
            return self.client_capabilities
        except Exception:  # noqa: BLE001 - before initialize
            return None

    def client_supports_progress(self) -> bool:
        caps = self._caps()
        return bool(caps and caps.window and caps.window.work_done_progress)

    def client_supports_configuration(self) -> bool:
        caps = self._caps()
        return bool(caps and caps.workspace and caps.workspace.configuration)

    def client_supports_document_changes(self) -> bool:
        caps = self._caps()
        return bool(
            caps and caps.workspace and caps.workspace.workspace_edit and caps.workspace.workspace_edit.document_changes
        )

    def position_encoding(self) -> str:
        try:
            return normalize_encoding(self.workspace.position_encoding)
        except Exception:  # noqa: BLE001
            return "utf-16"

    def folders(self) -> list[tuple[str, str]]:
        """(folder URI, folder path) of every workspace folder, longest path first."""
        try:
            folders = list(self.workspace.folders.values())
        except RuntimeError:
            return []
        out = []
        for folder in folders:
            path = to_fs_path(folder.uri)
            if path:
                out.append((folder.uri, str(Path(path))))
        if not out:
            root = self.workspace.root_path if self.protocol._workspace is not None else None
            if root:
                out.append((self.workspace.root_uri, str(Path(root))))
        return sorted(out, key=lambda f: len(f[1]), reverse=True)

    def folder_for_path(self, path: str) -> str | None:
        for _, folder_path in self.folders():
            if path == folder_path or path.startswith(folder_path.rstrip(os.sep) + os.sep):
                return folder_path
        return None

    def settings_for(self, path: str) -> Settings:
        for folder_uri, folder_path in self.folders():
            if path == folder_path or path.startswith(folder_path.rstrip(os.sep) + os.sep):
                if folder_uri in self.folder_settings:
                    return self.folder_settings[folder_uri]
        return self.global_settings

    def client_text(self, uri: str) -> str | None:
        """The text of a document as the client has it (open), else from disk, else None."""
        if unquote(uri) in self.workspace.text_documents:
            return self.workspace.get_text_document(uri).source
        path = to_fs_path(uri) if uri.startswith("file:") else None
        if path:
            try:
                return Path(path).read_text(encoding="utf-8", errors="replace")
            except OSError:
                return None
        return None

    # ---- settings -------------------------------------------------------------------------------

    async def load_settings(self) -> None:
        """Pull ``torchsanity`` settings for the global scope and every workspace folder."""
        try:
            if self.client_supports_configuration():
                folders = self.folders()
                items = [types.ConfigurationItem(section=SECTION)]
                items += [types.ConfigurationItem(scope_uri=uri, section=SECTION) for uri, _ in folders]
                result = await asyncio.wait_for(
                    self.workspace_configuration_async(types.ConfigurationParams(items=items)), timeout=10
                )
                result = list(result or [])
                self.global_settings = self._settings_from(result[0] if result else None)
                self.folder_settings = {
                    uri: self._settings_from(value) for (uri, _), value in zip(folders, result[1:])
                }
        except Exception as error:  # noqa: BLE001 - settings are optional
            self.log(f"torchsanity: cannot read settings: {error}", types.MessageType.Warning)
        finally:
            self.settings_ready.set()

    def _settings_from(self, value: Any) -> Settings:
        if value is None and self.init_settings is not None:
            return self.init_settings
        settings = Settings.from_json(value)
        for problem in settings.problems:
            self.log_once(f"torchsanity settings: {problem}", kind=types.MessageType.Warning)
        return settings

    def config_for(self, path: str, is_file: bool) -> Config:
        settings = self.settings_for(path)
        base = self.configs.for_path(path) if is_file else Config()
        return settings.apply(base)

    def project_root(self, path: str, config: Config) -> str:
        return self.folder_for_path(path) or (str(config.root) if config.root else str(Path(path).parent))

    def project_for(self, path: str, config: Config) -> Project | None:
        if self.worker is not None:
            return None  # the worker process keeps its own, per root and generation
        root = self.project_root(path, config)
        project = self.projects.get(root)
        if project is None:
            project = self.projects[root] = Project(root)
        return project

    # ---- documents ------------------------------------------------------------------------------

    def key_for(self, uri: str) -> str | None:
        """The state key of a client document: itself, or its notebook."""
        if uri in self.docs:
            return uri
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        if notebook is not None:
            return self.uris.get(unquote(notebook.uri), notebook.uri)
        return None

    def _cells(self, notebook_uri: str) -> list[tuple[str, str, int | None]]:
        notebook = self.workspace.get_notebook_document(notebook_uri=notebook_uri)
        if notebook is None:
            return []
        out = []
        for cell in notebook.cells:
            if cell.kind != types.NotebookCellKind.Code:
                continue
            doc = self.workspace.text_documents.get(unquote(cell.document))
            if doc is None or (doc.language_id or "python") != "python":
                continue
            out.append((cell.document, doc.source, doc.version))
        return out

    def snapshot(self, state: DocState) -> Snapshot | None:
        encoding = self.position_encoding()
        if state.notebook:
            if self.workspace.get_notebook_document(notebook_uri=state.key) is None:
                return None
            cells = self._cells(state.key)
            path, is_file = file_path(state.key, to_fs_path)
            config = self.config_for(path, is_file)
            return Snapshot(
                key=state.key,
                generation=state.generation,
                path=path,
                is_file=is_file,
                encoding=encoding,
                cells=tuple((uri, text) for uri, text, _ in cells),
                versions={uri: version for uri, _, version in cells},
                config=config,
                project=self.project_for(path, config) if is_file else None,
                project_root=self.project_root(path, config) if is_file else None,
                project_generation=self.project_generation,
            )
        if unquote(state.key) not in self.workspace.text_documents:
            return None
        doc = self.workspace.get_text_document(state.key)
        path, is_file = file_path(state.key, to_fs_path)
        config = self.config_for(path, is_file)
        return Snapshot(
            key=state.key,
            generation=state.generation,
            path=path,
            is_file=is_file,
            encoding=encoding,
            text=doc.source,
            versions={state.key: doc.version},
            config=config,
            project=self.project_for(path, config) if is_file else None,
            project_root=self.project_root(path, config) if is_file else None,
            project_generation=self.project_generation,
        )

    # ---- running the engine (in the analysis thread) ---------------------------------------------

    def _analyse_blocking(self, snapshot: Snapshot, timeout: float | None) -> Analysis:
        self._running = (snapshot.key, time.monotonic())
        try:
            if self.worker is None:
                return run_analysis(snapshot, self.live)
            payload = (snapshot, snapshot.project_root, snapshot.project_generation)
            return self.worker.call("analyse", payload, timeout)
        finally:
            self._running = None

    def _fix_blocking(self, analysis: Analysis, timeout: float | None) -> dict | None:
        if self.worker is None:
            return fix_all_edits(analysis)
        snapshot = analysis.snapshot
        try:
            return self.worker.call("fix", (analysis, snapshot.project_root, snapshot.project_generation), timeout)
        except (WorkerAborted, RuntimeError) as error:
            self.log(f"torchsanity: fix-all stopped: {error}", types.MessageType.Warning)
            return None

    def _abandon(self, key: str, reason: str, min_age: float = 0.0) -> None:
        """Stop the analysis of ``key`` under way (it analyses a text that is gone)."""
        running = self._running
        if self.worker is not None and running is not None and running[0] == key:
            if time.monotonic() - running[1] >= min_age:
                self.worker.kill(reason)

    # ---- scheduling -----------------------------------------------------------------------------

    def schedule(self, key: str, delay: float) -> None:
        state = self.docs.get(key)
        if state is None:
            return
        if state.timer is not None:
            state.timer.cancel()
            state.timer = None
        if delay <= 0:
            self._start(key)
        else:
            state.timer = asyncio.get_running_loop().call_later(delay, self._start, key)

    def _start(self, key: str) -> None:
        state = self.docs.get(key)
        if state is None:
            return
        state.timer = None
        if state.task is not None and not state.task.done():
            state.dirty = True
            return
        state.task = asyncio.get_running_loop().create_task(self._analyse_and_publish(state))

    async def _analyse_and_publish(self, state: DocState) -> None:
        if not self.settings_ready.is_set():
            try:
                await asyncio.wait_for(self.settings_ready.wait(), timeout=_SETTINGS_WAIT)
            except asyncio.TimeoutError:
                pass
        loop = asyncio.get_running_loop()
        while True:
            state.dirty = False
            snapshot = self.snapshot(state)
            if snapshot is None or self.docs.get(state.key) is not state:
                return
            settings = self.settings_for(snapshot.path)
            timeout = settings.analysis_timeout_ms / 1000.0 or None
            try:
                analysis = await loop.run_in_executor(self.pool, self._analyse_blocking, snapshot, timeout)
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
                self.log_once(f"{message}: {snapshot.path}", kind=types.MessageType.Warning)
                analysis = stopped_analysis(snapshot, message)
            except RuntimeError as error:  # the pool is shut down (exit), or the worker failed
                self.log_once(f"torchsanity: analysis failed: {error}")
                return
            state.analyses += 1
            state.last_seconds = analysis.seconds
            if self.docs.get(state.key) is not state:
                return  # closed meanwhile
            if state.dirty:
                continue  # the text changed and its timer fired while we ran: again, at once
            if snapshot.generation != state.generation:
                return  # a newer text is waiting for its debounce timer; it will publish
            self._accept(state, analysis, settings)
            return

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

    def _accept(self, state: DocState, analysis: Analysis, settings: Settings) -> None:
        state.current = analysis
        for problem in analysis.report.problems:
            if problem.kind == "internal-error":
                rule = problem.message.split(":", 1)[0]
                self.log_once(f"torchsanity: {problem.message} (the rule is skipped)", key=rule)
        if analysis.excluded or not settings.enable:
            state.good = analysis
            state.finding_diags = {uri: [] for uri in analysis.uris}
            diags = dict(state.finding_diags)
        elif analysis.parsed:
            state.good = analysis
            state.finding_diags = analysis.finding_diagnostics()
            problems = analysis.problem_diagnostics()
            diags = {uri: state.finding_diags.get(uri, []) + problems.get(uri, []) for uri in analysis.uris}
        else:
            # Policy: keep the last good findings, add the syntax error.
            problems = analysis.problem_diagnostics()
            diags = {uri: state.finding_diags.get(uri, []) + problems.get(uri, []) for uri in analysis.uris}
        previous = set(self._published_uris(state))
        for uri, diagnostics in diags.items():
            self.static_diags[uri] = diagnostics
        for uri in previous - set(diags):  # cells removed from the notebook
            self.static_diags.pop(uri, None)
            self._publish(uri, [], None)
        self._published[state.key] = list(diags)
        for uri in diags:
            self.republish(uri, analysis.snapshot.versions.get(uri))

    def _published_uris(self, state: DocState) -> list[str]:
        return self._published.get(state.key, [])

    def republish(self, uri: str, version: int | None = None) -> None:
        if version is None and unquote(uri) in self.workspace.text_documents:
            version = self.workspace.get_text_document(uri).version
        diagnostics = list(self.static_diags.get(uri, [])) + list(self.probes.diagnostics.get(uri, []))
        self._publish(uri, diagnostics, version)

    def _publish(self, uri: str, diagnostics: list[types.Diagnostic], version: int | None) -> None:
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )

    def open(self, key: str, notebook: bool = False) -> None:
        self.uris[unquote(key)] = key
        state = self.docs.get(key)
        if state is None:
            state = self.docs[key] = DocState(key=key, notebook=notebook)
        state.generation += 1
        self.schedule(key, 0)

    def changed(self, key: str) -> None:
        state = self.docs.get(key)
        if state is None:
            return
        state.generation += 1
        snapshot_path = file_path(key, to_fs_path)[0]
        settings = self.settings_for(snapshot_path)
        if settings.run == RUN_ON_SAVE:
            return
        self._abandon(key, "superseded", min_age=_ABANDON_AFTER)
        self.schedule(key, settings.debounce_ms / 1000.0)

    def close(self, key: str) -> None:
        self._abandon(key, "closed")
        state = self.docs.pop(key, None)
        if state is not None and state.timer is not None:
            state.timer.cancel()
        for uri in self._published.pop(key, []) or [key]:
            self.static_diags.pop(uri, None)
            self.probes.clear_for(uri)
            self._publish(uri, [], None)

    def reanalyse_all(self) -> None:
        for key, state in list(self.docs.items()):
            state.generation += 1
            self.schedule(key, 0)


def _is_python(doc: types.TextDocumentItem) -> bool:
    return doc.language_id == "python" or doc.uri.endswith((".py", ".pyi"))


def create_server() -> TorchSanityServer:
    server = TorchSanityServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: TorchSanityServer, params: types.InitializeParams) -> None:
        # Swap in a workspace that splits lines as LSP does (see _LspTextDocument).
        ws = ls.protocol._workspace
        if ws is not None:
            ls.protocol._workspace = _LspWorkspace(
                ws.root_uri, ws._sync_kind, list(ws.folders.values()), ws.position_encoding
            )
        # Settings for clients without workspace/configuration: `{"settings": {...}}`,
        # `{"settings": {"torchsanity": {...}}}` or `{"torchsanity": {...}}` (Helix sends its `config`).
        options = to_plain(params.initialization_options) if params.initialization_options else None
        settings = None
        if isinstance(options, dict):
            settings = options.get("settings", options.get(SECTION))
            if isinstance(settings, dict) and isinstance(settings.get(SECTION), dict):
                settings = settings[SECTION]
        if settings is not None:
            ls.init_settings = ls._settings_from(settings)
            ls.global_settings = ls.init_settings

    @server.feature(types.INITIALIZED)
    async def initialized(ls: TorchSanityServer, params: types.InitializedParams) -> None:
        caps = ls._caps()
        registrations = []
        if caps and caps.workspace and caps.workspace.did_change_configuration and (
            caps.workspace.did_change_configuration.dynamic_registration
        ):
            registrations.append(
                types.Registration(id="torchsanity-config", method=types.WORKSPACE_DID_CHANGE_CONFIGURATION)
            )
        if caps and caps.workspace and caps.workspace.did_change_watched_files and (
            caps.workspace.did_change_watched_files.dynamic_registration
        ):
            registrations.append(
                types.Registration(
                    id="torchsanity-pyproject",
                    method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                    register_options=types.DidChangeWatchedFilesRegistrationOptions(
                        watchers=[types.FileSystemWatcher(glob_pattern="**/pyproject.toml")]
                    ),
                )
            )
        if registrations:
            try:
                ls.client_register_capability(types.RegistrationParams(registrations=registrations))
            except Exception as error:  # noqa: BLE001
                ls.log(f"torchsanity: cannot register for configuration changes: {error}", types.MessageType.Warning)
        if ls.worker is not None:
            ls.worker.start()
        await ls.load_settings()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: TorchSanityServer, *args) -> None:
        ls.probes.cancel_all()
        await ls.probes.wait_all()

    @server.feature(types.EXIT)
    def exit_(ls: TorchSanityServer, *args) -> None:
        ls.probes.shutdown_blocking(timeout=10)

    # ---- text documents -------------------------------------------------------------------------

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TorchSanityServer, params: types.DidOpenTextDocumentParams) -> None:
        if ls.workspace.get_notebook_document(cell_uri=params.text_document.uri) is not None:
            return
        if _is_python(params.text_document):
            ls.open(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TorchSanityServer, params: types.DidChangeTextDocumentParams) -> None:
        key = ls.key_for(params.text_document.uri)
        if key is not None:
            ls.changed(key)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: TorchSanityServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.projects.clear()  # sibling modules may have changed
        ls.project_generation += 1
        key = ls.key_for(params.text_document.uri)
        if key is not None:
            state = ls.docs[key]
            state.generation += 1
            ls.schedule(key, 0)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TorchSanityServer, params: types.DidCloseTextDocumentParams) -> None:
        if params.text_document.uri in ls.docs:
            ls.close(params.text_document.uri)

    # ---- notebooks ------------------------------------------------------------------------------

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def nb_open(ls: TorchSanityServer, params: types.DidOpenNotebookDocumentParams) -> None:
        ls.open(params.notebook_document.uri, notebook=True)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def nb_change(ls: TorchSanityServer, params: types.DidChangeNotebookDocumentParams) -> None:
        key = params.notebook_document.uri
        if key not in ls.docs:
            return
        structure = params.change.cells.structure if params.change.cells else None
        if structure is not None:
            ls.docs[key].generation += 1
            ls.schedule(key, 0)  # cells added / removed / moved: re-analyse now
        else:
            ls.changed(key)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
    def nb_save(ls: TorchSanityServer, params: types.DidSaveNotebookDocumentParams) -> None:
        key = params.notebook_document.uri
        if key in ls.docs:
            ls.docs[key].generation += 1
            ls.schedule(key, 0)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def nb_close(ls: TorchSanityServer, params: types.DidCloseNotebookDocumentParams) -> None:
        ls.close(params.notebook_document.uri)

    # ---- configuration --------------------------------------------------------------------------

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: TorchSanityServer, params: types.DidChangeConfigurationParams) -> None:
        if ls.client_supports_configuration():
            ls.settings_ready.clear()
            await ls.load_settings()
        else:
            settings = to_plain(params.settings)
            if isinstance(settings, dict) and isinstance(settings.get(SECTION), dict):
                ls.global_settings = ls._settings_from(settings[SECTION])
                ls.folder_settings = {}
        ls.configs.clear()
        ls.reanalyse_all()

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: TorchSanityServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.configs.clear()
        ls.projects.clear()
        ls.project_generation += 1
        ls.reanalyse_all()

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def did_change_folders(ls: TorchSanityServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        await ls.load_settings()
        ls.reanalyse_all()

    # ---- code actions and hover -----------------------------------------------------------------

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=lsp_actions.PROVIDED_KINDS, resolve_provider=False),
    )
    async def code_action(ls: TorchSanityServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        key = ls.key_for(uri)
        if key is None:
            return None
        analysis = await ls.fresh(key)
        if analysis is None:
            return None
        only = list(params.context.only) if params.context.only else None
        doc_changes = ls.client_supports_document_changes()
        actions = lsp_actions.quick_fixes(analysis, uri, params.range, only, doc_changes)
        if lsp_actions.wants(only, lsp_actions.FIX_ALL_KIND):
            loop = asyncio.get_running_loop()
            settings = ls.settings_for(analysis.snapshot.path)
            timeout = settings.analysis_timeout_ms / 1000.0 or None
            edits = await loop.run_in_executor(ls.pool, ls._fix_blocking, analysis, timeout)
            if edits:
                actions.append(lsp_actions.fix_all_action(edits, analysis.snapshot.versions, doc_changes))
        return actions or None

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: TorchSanityServer, params: types.HoverParams) -> types.Hover | None:
        return lsp_actions.hover(list(ls.static_diags.get(params.text_document.uri, [])), params.position)

    # ---- probes ---------------------------------------------------------------------------------

    @server.feature(RUN_PROBE_REQUEST)
    async def run_probe_request(ls: TorchSanityServer, params: Any) -> dict:
        return await ls.probes.run(to_plain(params), ls.protocol.msg_id)

    @server.command(RUN_PROBE_COMMAND)
    async def run_probe_command(ls: TorchSanityServer, *args: Any) -> dict:
        if len(args) != 1:
            raise JsonRpcInvalidParams(f"{RUN_PROBE_COMMAND} takes one argument: the probe params object")
        return await ls.probes.run(to_plain(args[0]), ls.protocol.msg_id)

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancel(ls: TorchSanityServer, params: types.WorkDoneProgressCancelParams) -> None:
        ls.probes.cancel_token(params.token)

    @server.feature(SERVER_STATUS_REQUEST)
    def server_status(ls: TorchSanityServer, params: Any) -> dict:
        return {
            "documents": [
                {"uri": key, "analyses": state.analyses, "lastAnalysisMs": round(state.last_seconds * 1000, 3)}
                for key, state in ls.docs.items()
            ],
            "probes": ls.probes.running,
            "pid": os.getpid(),
        }

    return server


def _setup_logging() -> None:
    level = os.environ.get("TORCHSANITY_LSP_LOG", "WARNING").upper()
    logging.basicConfig(
        stream=sys.stderr,
        level=getattr(logging, level, logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # pygls logs every message it sends at INFO: keep that out of the client's stderr pane by default.
    if level != "DEBUG":
        logging.getLogger("pygls").setLevel(max(logging.WARNING, getattr(logging, level, logging.WARNING)))


def start_stdio() -> None:
    """Run the language server on stdin / stdout until the client says exit (or goes away)."""
    _setup_logging()
    server = create_server()
    code = 0
    try:
        server.start_io()
    finally:
        if server.worker is not None:
            server.worker.kill("exit")
        server.probes.shutdown_blocking(timeout=10)
        code = 0 if server.protocol._shutdown else 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (ValueError, OSError):  # closed by pygls at exit
                pass
    # Worker threads (a stdin reader blocked in readline, an analysis of a huge file) must not keep
    # the process alive once the client is gone.
    os._exit(code)
