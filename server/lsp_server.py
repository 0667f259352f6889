"""The language server's state and behaviour (:class:`TorchSanityServer`): documents, analyses, diagnostics, trust,
probes and watches. The handlers that pygls calls are one-liners in :mod:`~torchsanity.server.language_server`."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any
from urllib.parse import unquote

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path

from . import lsp_actions, lsp_probe_actions, lsp_protocol
from .lsp_analysis import Analysis, Snapshot, file_path
from .lsp_codelens import code_lenses, lens_range
from .lsp_diagnostics import DiagnosticStore, edits_of
from .lsp_folders import FolderSettings
from .lsp_positions import normalize_encoding
from .lsp_probe import RENDER_REPORT_REQUEST, RUN_PROBE_REQUEST, ProbeHost, ProbeManager
from .lsp_scheduler import Analyser, DocState, Scheduler, timeout_of
from .lsp_settings import RUN_ON_SAVE, Settings, to_plain
from .lsp_watch import (RENDER_WATCH_REQUEST, WATCH_REQUEST, WATCH_STOP_NOTIFICATION, RuntimeDiagnostics,
                        WatchManager)
from .lsp_worker import WorkerAborted

logger = logging.getLogger("torchsanity.server")

SERVER_STATUS_REQUEST = "torchsanity/serverStatus"
WORKSPACE_TRUST_NOTIFICATION = "torchsanity/workspaceTrust"
TRUST_OPTION = "workspaceTrusted"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("torchsanity")
    except Exception:  # pragma: no cover
        return "0"


def _is_python(doc: types.TextDocumentItem) -> bool:
    return doc.language_id == "python" or doc.uri.endswith((".py", ".pyi"))


class TorchSanityServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(
            name="torchsanity",
            version=_version(),
            protocol_cls=lsp_protocol.protocol_class({RUN_PROBE_REQUEST, RENDER_REPORT_REQUEST, SERVER_STATUS_REQUEST,
                                                       WORKSPACE_TRUST_NOTIFICATION, WATCH_REQUEST,
                                                       WATCH_STOP_NOTIFICATION, RENDER_WATCH_REQUEST}),
            converter_factory=lsp_protocol.converter_factory,
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
        self.uris: dict[str, str] = {}  # unquoted URI -> the client's spelling
        self.texts: dict[str, str] = {}  # document URI -> its text before the next change
        self.paths: dict[str, str] = {}  # open Python file's URI -> its path (the project overlay)
        self.watching_files = False  # the client tells us about module files changed on disk
        self.trusted = True
        self._logged: set[str] = set()
        self.folders = FolderSettings(
            workspace=lambda: self.workspace if lsp_protocol.workspace_ready(self.protocol) else None,
            supports_configuration=self.client_supports_configuration,
            request_configuration=self.workspace_configuration_async,
            log=self.log,
            log_once=self.log_once,
        )
        self.settings_ready = self.folders.ready
        self.analyser = Analyser()
        self.scheduler = Scheduler(self, self.analyser)
        self.probes = ProbeManager(
            ProbeHost(
                notify=self.protocol.notify,
                log=self.log,
                republish=lambda uri: self.store.republish(uri),
                client_text=self.client_text,
                position_encoding=self.position_encoding,
                folder_for_path=self.folders.folder_for_path,
                supports_progress=self.client_supports_progress,
                progress=self.work_done_progress,
                trusted=lambda: self.trusted,
                static_diagnostics=lambda uri: self.store.for_uri(uri),
                settings_for=self.folders.settings_for,
                settings_ready=self.folders.ready,
            )
        )
        self.watches = WatchManager(self.probes.host)  # torchsanity/watch: the same needs as the probe
        self.protocol.on_cancel = lambda msg_id: (self.probes.cancel_request(msg_id), self.watches.cancel_request(msg_id))
        self.store = DiagnosticStore(self._send_diagnostics, RuntimeDiagnostics(self.probes.diagnostics,
                                                                                self.watches.diagnostics), self._version_of)

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

    def client_refreshes_lenses(self) -> bool:
        caps = self._caps()
        return bool(caps and caps.workspace and caps.workspace.code_lens and caps.workspace.code_lens.refresh_support)

    def position_encoding(self) -> str:
        try:
            return normalize_encoding(self.workspace.position_encoding)
        except Exception:  # noqa: BLE001
            return "utf-16"

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

    def settings_for(self, path: str) -> Settings:
        return self.folders.settings_for(path)

    def _version_of(self, uri: str) -> int | None:
        if unquote(uri) in self.workspace.text_documents:
            return self.workspace.get_text_document(uri).version
        return None

    # ---- initialisation, settings, trust ---------------------------------------------------------

    def initialize(self, params: types.InitializeParams) -> None:
        lsp_protocol.install_lsp_workspace(self.protocol)
        options = to_plain(params.initialization_options) if params.initialization_options else None
        if isinstance(options, dict):
            self.trusted = self._trust_from(options.get(TRUST_OPTION, True), f"initializationOptions.{TRUST_OPTION}")
        self.folders.from_initialization(options)

    async def initialized(self) -> None:
        caps = self._caps()
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
                    id="torchsanity-files",
                    method=types.WORKSPACE_DID_CHANGE_WATCHED_FILES,
                    register_options=types.DidChangeWatchedFilesRegistrationOptions(
                        watchers=[
                            types.FileSystemWatcher(glob_pattern="**/pyproject.toml"),
                            types.FileSystemWatcher(glob_pattern="**/*.py"),
                        ]
                    ),
                )
            )
        if registrations:
            try:
                self.client_register_capability(types.RegistrationParams(registrations=registrations))
                self.watching_files = any(r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES for r in registrations)
            except Exception as error:  # noqa: BLE001
                self.log(f"torchsanity: cannot register for configuration changes: {error}", types.MessageType.Warning)
        self.analyser.start()
        await self.folders.load()

    async def configuration_changed(self, params: types.DidChangeConfigurationParams) -> None:
        await self.folders.changed(to_plain(params.settings))
        self.scheduler.all_now()
        self.refresh_lenses()

    async def folders_changed(self) -> None:
        await self.folders.load()
        self.scheduler.all_now()

    def watched_files_changed(self, params: types.DidChangeWatchedFilesParams) -> None:
        """Files changed on disk: a ``pyproject.toml`` re-reads configurations and projects and analyses
        everything again; a module file (not open: an open buffer's text is what the project reads)
        re-analyses only the open documents that depend on it."""
        modules = []
        for change in params.changes:
            path, is_file = file_path(change.uri, to_fs_path)
            if not is_file:
                continue
            if Path(path).name == "pyproject.toml":
                self.folders.project_files_changed()
                self.scheduler.all_now()
                return
            if path.endswith((".py", ".pyi")) and self.uris.get(unquote(change.uri)) not in self.paths:
                modules.append(path)
        if modules:
            self.folders.modules_changed(modules)
            self.scheduler.files_changed(modules)

    def _trust_from(self, value: Any, where: str) -> bool:
        """A trust flag from the client; anything but a boolean is logged and counts as untrusted."""
        if not isinstance(value, bool):
            self.log(f"torchsanity: {where} must be true or false, got {value!r}: treating the workspace as untrusted")
            return False
        return value

    def trust_changed(self, params: Any) -> None:
        """``torchsanity/workspaceTrust``: ``{"trusted": bool}``."""
        params = to_plain(params)
        self.trusted = self._trust_from(params.get("trusted") if isinstance(params, dict) else params,
                                        f"{WORKSPACE_TRUST_NOTIFICATION} trusted")
        if not self.trusted:
            self.probes.cancel_all()
            self.watches.cancel_all()
        self.refresh_lenses()

    def refresh_lenses(self) -> None:
        if self.client_refreshes_lenses():
            try:
                self.workspace_code_lens_refresh(None)
            except Exception as error:  # noqa: BLE001
                logger.info("codeLens refresh failed: %s", error)

    # ---- documents ------------------------------------------------------------------------------

    def key_for(self, uri: str) -> str | None:
        """The state key of a client document: itself, or its notebook."""
        if uri in self.scheduler.docs:
            return uri
        notebook = self.workspace.get_notebook_document(cell_uri=uri)
        if notebook is not None:
            return self.uris.get(unquote(notebook.uri), notebook.uri)
        return None

    def opened(self, params: types.DidOpenTextDocumentParams) -> None:
        doc = params.text_document
        if self.workspace.get_notebook_document(cell_uri=doc.uri) is None and _is_python(doc):
            self.uris[unquote(doc.uri)] = doc.uri
            self.texts[doc.uri] = doc.text
            path, is_file = file_path(doc.uri, to_fs_path)
            if is_file:
                self.paths[doc.uri] = path
            self.scheduler.opened(doc.uri)
            if is_file:
                self._buffer_replaced_disk(path, doc.text, exclude=doc.uri)

    def changed(self, params: types.DidChangeTextDocumentParams) -> None:
        uri = params.text_document.uri
        key = self.key_for(uri)
        if key is None:
            return
        path = file_path(key, to_fs_path)[0]
        if key == uri:
            text = self.workspace.get_text_document(uri).source
            edits = edits_of(params.content_changes, self.texts.get(uri), text)
            self.texts[uri] = text
            current = self.scheduler.docs[key].current
            stale = current is not None and (not current.parsed or self.settings_for(path).run == RUN_ON_SAVE)
            self.store.edited(key, uri, edits, self.position_encoding(), publish_static=stale)
            if self.probes.prune(uri, text):  # a probe diagnostic whose line changed speaks of code that is gone
                self.store.republish(uri)
        self.scheduler.changed(key, path)

    def _buffer_replaced_disk(self, path: str, text: str, exclude: str | None = None) -> None:
        """A buffer was opened or closed: when its text is not the file's, the open documents that
        depend on the file are analysed again."""
        if not self.scheduler.dependents([path], exclude):
            return
        try:
            same = Path(path).read_text(encoding="utf-8") == text
        except (OSError, UnicodeDecodeError):
            same = False
        if not same:
            self.scheduler.files_changed([path], exclude=exclude)

    def saved(self, uri: str) -> None:
        if not self.watching_files:
            self.folders.forget_projects()  # other modules may have changed on disk: nothing tells us
        key = self.key_for(uri)
        if key is not None:
            self.scheduler.now(key)
            path = self.paths.get(key)
            if path is not None and self.settings_for(path).run == RUN_ON_SAVE:
                self.scheduler.files_changed([path], exclude=key)  # its edits were not followed

    def closed(self, key: str) -> None:
        if self.scheduler.closed(key) is not None:
            text = self.texts.pop(key, None)
            path = self.paths.pop(key, None)
            if path is not None and text is not None:
                self._buffer_replaced_disk(path, text)  # now the file on disk replaces the buffer
            for uri in self.store.closed(key):
                self.probes.clear_for(uri)
                self.watches.clear_for(uri)

    def notebook_opened(self, uri: str) -> None:
        self.uris[unquote(uri)] = uri
        self.scheduler.opened(uri, notebook=True)

    def notebook_changed(self, params: types.DidChangeNotebookDocumentParams) -> None:
        key = params.notebook_document.uri
        if key not in self.scheduler.docs:
            return
        if params.change.cells and params.change.cells.structure is not None:
            self.scheduler.now(key)  # cells added / removed / moved: re-analyse now
        else:
            self.scheduler.changed(key, file_path(key, to_fs_path)[0])

    def notebook_saved(self, uri: str) -> None:
        self.scheduler.now(uri)

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
        """What to analyse for ``state`` now (None: the document is gone)."""
        if state.notebook:
            if self.workspace.get_notebook_document(notebook_uri=state.key) is None:
                return None
            cells = self._cells(state.key)
            text_fields: dict[str, Any] = {
                "cells": tuple((uri, text) for uri, text, _ in cells),
                "versions": {uri: version for uri, _, version in cells},
            }
        else:
            if unquote(state.key) not in self.workspace.text_documents:
                return None
            doc = self.workspace.get_text_document(state.key)
            text_fields = {"text": doc.source, "versions": {state.key: doc.version}}
        path, is_file = file_path(state.key, to_fs_path)
        folders = self.folders
        config = folders.config_for(path, is_file)
        root = folders.project_root(path, config) if is_file else None
        return Snapshot(
            key=state.key,
            generation=state.generation,
            path=path,
            is_file=is_file,
            encoding=self.position_encoding(),
            config=config,
            # the projects live where the analysis runs (the worker process, or this process' thread)
            project_root=root,
            project_generation=folders.generation,
            disk_changes=tuple(folders.disk_changes),
            overlay=self._overlay(root) if root is not None else None,
            **text_fields,
        )

    def _overlay(self, root: str) -> dict[str, str]:
        """The text of every open Python file under ``root``: the project reads it instead of the disk."""
        prefix = root.rstrip(os.sep) + os.sep
        out = {}
        for key, path in self.paths.items():
            if path.startswith(prefix):
                doc = self.workspace.text_documents.get(unquote(key))
                if doc is not None:
                    out[path] = doc.source
        return out

    def accept(self, state: DocState, analysis: Analysis, settings: Settings) -> None:
        """Publish the analysis of a document's current text (called by the scheduler)."""
        for problem in analysis.report.problems:
            if problem.kind == "internal-error":
                rule = problem.message.split(":", 1)[0]
                self.log_once(f"torchsanity: {problem.message} (the rule is skipped)", key=rule)
        self.store.accept(state.key, analysis, settings.enable)
        if analysis.parsed and not state.notebook:
            index = analysis.indexes[state.key]
            entries = analysis.entry_points if settings.enable else ()
            lenses = [lens_range(index, entry.line) for entry in entries]
            if self.store.lenses.get(state.key) != lenses:
                self.store.lenses[state.key] = lenses
                self.refresh_lenses()

    def _send_diagnostics(self, uri: str, diagnostics: list[types.Diagnostic], version: int | None) -> None:
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=version)
        )

    async def shutting_down(self) -> None:
        """``shutdown``: cancel every probe and wait for their process trees to die."""
        self.probes.cancel_all()
        self.watches.cancel_all()
        await self.probes.wait_all()
        await self.watches.wait_all()

    # ---- requests -------------------------------------------------------------------------------

    async def code_actions(self, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        uri = params.text_document.uri
        key = self.key_for(uri)
        analysis = await self.scheduler.fresh(key) if key is not None else None
        only = list(params.context.only) if params.context.only else None
        doc_changes = self.client_supports_document_changes()
        probe_actions = lsp_probe_actions.code_actions(
            uri, self.client_text(uri), params.range, self.probes.diagnostics.get(uri, []), self._version_of(uri),
            doc_changes, self.position_encoding(), only)
        if analysis is None:
            return probe_actions or None
        # off the event loop: each quick fix is verified (a re-analysis of the fixed text) before it is offered
        actions = await asyncio.get_running_loop().run_in_executor(
            None, lsp_actions.quick_fixes, analysis, uri, params.range, only, doc_changes)
        if lsp_actions.wants(only, lsp_actions.FIX_ALL_KIND):
            edits = await self._fix_all(analysis)
            if edits:
                actions.append(lsp_actions.fix_all_action(edits, analysis.snapshot.versions, doc_changes))
        return actions + probe_actions or None

    async def _fix_all(self, analysis: Analysis) -> dict | None:
        try:
            return await self.analyser.fix_all(analysis, timeout_of(self.settings_for(analysis.snapshot.path)))
        except (WorkerAborted, RuntimeError) as error:
            self.log(f"torchsanity: fix-all stopped: {error}", types.MessageType.Warning)
            return None

    async def code_lenses(self, uri: str) -> list[types.CodeLens] | None:
        """The lenses of a file: from its last analysis that parsed, moved through the edits since."""
        state = self.scheduler.docs.get(uri)
        if state is None or state.notebook or not self.settings_for(file_path(uri, to_fs_path)[0]).code_lens:
            return None
        if state.current is None:
            await self.scheduler.fresh(uri)
        return code_lenses(uri, self.store.lenses.get(uri, []), self.trusted) or None

    async def run_probe(self, params: Any) -> dict:
        return await self.probes.run(to_plain(params), self.protocol.msg_id)

    def status(self) -> dict:
        return {
            "documents": [
                {"uri": key, "analyses": state.analyses, "lastAnalysisMs": round(state.last_seconds * 1000, 3)}
                for key, state in self.scheduler.docs.items()
            ],
            "probes": self.probes.running,
            "watches": self.watches.running,
            "trusted": self.trusted,
            "pid": os.getpid(),
        }
