"""The torchsanity language server (pygls 2.x, stdio): ``torchsanity server``.

What it does, and where each part lives (every handler below is one line that delegates):

- **Diagnostics** for Python documents (language id ``python`` or a ``.py`` / ``.pyi`` path) on open,
  on change (debounced by ``torchsanity.debounceMs``) and on save; with ``torchsanity.run = "onSave"``
  only on open and save. Notebook documents are synced through LSP notebook sync; their Python code
  cells are analysed together as one program and each finding is published on the cell it starts in
  (:mod:`~torchsanity.server.lsp_notebook`).
- **Scheduling** (:mod:`~torchsanity.server.lsp_scheduler`): analyses run one at a time in a worker
  process, never on the event loop, so hover, code actions and probe requests are answered while a big
  file is analysed; a result older than the document is dropped; an analysis over its time budget
  (``torchsanity.analysisTimeoutMs``) becomes one ``SAN000`` warning.
  ``TORCHSANITY_LSP_WORKER=thread`` analyses in the server's thread instead.
- **Syntax errors keep the last good diagnostics**, moved through the edits
  (:mod:`~torchsanity.server.lsp_diagnostics`): while a file does not parse, the findings of the last
  text that parsed stay, on the lines they describe (an edit above moves them, an edit over one withdraws
  it), and the syntax error is added (code ``SAN000``, as every file-level problem, with the parser's
  message). Quick fixes are only offered on findings of the current text. The probe's diagnostics follow
  the edits the same way.
- **The project index** (:class:`~torchsanity.analyzers.Project`, one per workspace folder, kept where
  the analyses run): cross-file resolution reads the open buffers' unsaved text instead of their files
  (an overlay sent with each analysis) and forgets what a file contributed when it changes — a buffer
  edit, a buffer closed with unsaved text, or a change on disk (``workspace/didChangeWatchedFiles``,
  registered dynamically for ``**/*.py`` and ``**/pyproject.toml`` when the client allows; without
  it, a save re-reads every project). Each analysis records the project files it looked for; a change
  to one of them re-analyses and republishes the other open documents that depend on it, in the same
  debounce window; nothing else is re-analysed. A file outside every workspace folder has the project
  of its ``pyproject.toml``'s folder, else of its own folder.
- **CodeLens** (:mod:`~torchsanity.server.lsp_codelens`): "Run Sanity Probe" over each training entry
  point the program model finds (command ``torchsanity.runSanityProbe``, argument: the document URI);
  off with ``torchsanity.codeLens = false``.
- **Workspace trust**: ``initializationOptions.workspaceTrusted = false`` (absent: trusted) and the
  ``torchsanity/workspaceTrust`` notification (``{"trusted": bool}``) tell the server whether the client
  trusts the workspace (a value that is not a boolean is logged and counts as untrusted); while it does
  not, ``torchsanity/runProbe`` is refused with a JSON-RPC error (code -32803, ``data.reason =
  "untrusted"``) and running probes are cancelled. Static analysis, which never executes workspace
  code, runs either way.
- Code actions, hover: :mod:`~torchsanity.server.lsp_actions`. Settings:
  :mod:`~torchsanity.server.lsp_settings`. Probes: :mod:`~torchsanity.server.lsp_probe`. Positions
  are converted to the client's encoding (UTF-16 by default): :mod:`~torchsanity.server.lsp_positions`.
  Everything that reaches into pygls' private members: :mod:`~torchsanity.server.lsp_protocol`.
- A rule that throws is skipped and logged to the client once (``window/logMessage``), never shown as
  a pop-up; pygls' default ``window/showMessage`` on handler errors is replaced by a log message.
- ``torchsanity/serverStatus`` (request, no params) answers counters used by tests and benchmarks:
  analyses per document, the last analysis time, running probes.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

from lsprotocol import types
from pygls.exceptions import JsonRpcInvalidParams

from . import lsp_actions, lsp_protocol
from .lsp_probe import RENDER_REPORT_REQUEST, RUN_PROBE_COMMAND, RUN_PROBE_REQUEST, render_report
from .lsp_server import SERVER_STATUS_REQUEST, WORKSPACE_TRUST_NOTIFICATION, TorchSanityServer
from .lsp_settings import to_plain
from .lsp_watch import RENDER_WATCH_REQUEST, WATCH_REQUEST, WATCH_STOP_NOTIFICATION, render_watch

__all__ = ["TorchSanityServer", "create_server", "start_stdio"]


def _one_probe_argument(args: tuple) -> Any:
    if len(args) != 1:
        raise JsonRpcInvalidParams(f"{RUN_PROBE_COMMAND} takes one argument: the probe params object")
    return args[0]


def create_server() -> TorchSanityServer:
    server = TorchSanityServer()

    @server.feature(types.INITIALIZE)
    def initialize(ls: TorchSanityServer, params: types.InitializeParams) -> None:
        ls.initialize(params)

    @server.feature(types.INITIALIZED)
    async def initialized(ls: TorchSanityServer, params: types.InitializedParams) -> None:
        await ls.initialized()

    @server.feature(types.SHUTDOWN)
    async def shutdown(ls: TorchSanityServer, *args) -> None:
        await ls.shutting_down()

    @server.feature(types.EXIT)
    def exit_(ls: TorchSanityServer, *args) -> None:
        ls.probes.shutdown_blocking(timeout=10)
        ls.watches.shutdown_blocking(timeout=10)

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: TorchSanityServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.opened(params)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: TorchSanityServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.changed(params)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE, types.SaveOptions(include_text=False))
    def did_save(ls: TorchSanityServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.saved(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: TorchSanityServer, params: types.DidCloseTextDocumentParams) -> None:
        ls.closed(params.text_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_OPEN)
    def nb_open(ls: TorchSanityServer, params: types.DidOpenNotebookDocumentParams) -> None:
        ls.notebook_opened(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CHANGE)
    def nb_change(ls: TorchSanityServer, params: types.DidChangeNotebookDocumentParams) -> None:
        ls.notebook_changed(params)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_SAVE)
    def nb_save(ls: TorchSanityServer, params: types.DidSaveNotebookDocumentParams) -> None:
        ls.notebook_saved(params.notebook_document.uri)

    @server.feature(types.NOTEBOOK_DOCUMENT_DID_CLOSE)
    def nb_close(ls: TorchSanityServer, params: types.DidCloseNotebookDocumentParams) -> None:
        ls.closed(params.notebook_document.uri)

    @server.feature(types.WORKSPACE_DID_CHANGE_CONFIGURATION)
    async def did_change_configuration(ls: TorchSanityServer, params: types.DidChangeConfigurationParams) -> None:
        await ls.configuration_changed(params)

    @server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
    def did_change_watched_files(ls: TorchSanityServer, params: types.DidChangeWatchedFilesParams) -> None:
        ls.watched_files_changed(params)

    @server.feature(types.WORKSPACE_DID_CHANGE_WORKSPACE_FOLDERS)
    async def did_change_folders(ls: TorchSanityServer, params: types.DidChangeWorkspaceFoldersParams) -> None:
        await ls.folders_changed()

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=lsp_actions.PROVIDED_KINDS, resolve_provider=False),
    )
    async def code_action(ls: TorchSanityServer, params: types.CodeActionParams) -> list[types.CodeAction] | None:
        return await ls.code_actions(params)

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    def hover(ls: TorchSanityServer, params: types.HoverParams) -> types.Hover | None:
        return lsp_actions.hover(ls.store.for_uri(params.text_document.uri), params.position)

    @server.feature(types.TEXT_DOCUMENT_CODE_LENS, types.CodeLensOptions(resolve_provider=False))
    async def code_lens(ls: TorchSanityServer, params: types.CodeLensParams) -> list[types.CodeLens] | None:
        return await ls.code_lenses(params.text_document.uri)

    @server.feature(RUN_PROBE_REQUEST)
    async def run_probe_request(ls: TorchSanityServer, params: Any) -> dict:
        return await ls.run_probe(params)

    @server.feature(RENDER_REPORT_REQUEST)
    def render_report_request(ls: TorchSanityServer, params: Any) -> dict:
        return render_report(to_plain(params))

    @server.feature(WATCH_REQUEST)
    async def watch_request(ls: TorchSanityServer, params: Any) -> dict:
        return await ls.watches.run(to_plain(params), ls.protocol.msg_id)

    @server.feature(RENDER_WATCH_REQUEST)
    def render_watch_request(ls: TorchSanityServer, params: Any) -> dict:
        return render_watch(to_plain(params))

    @server.feature(WATCH_STOP_NOTIFICATION)
    def watch_stop(ls: TorchSanityServer, params: Any) -> None:
        ls.watches.stop(to_plain(params))

    @server.command(RUN_PROBE_COMMAND)
    async def run_probe_command(ls: TorchSanityServer, *args: Any) -> dict:
        return await ls.run_probe(_one_probe_argument(args))

    @server.feature(types.WINDOW_WORK_DONE_PROGRESS_CANCEL)
    def progress_cancel(ls: TorchSanityServer, params: types.WorkDoneProgressCancelParams) -> None:
        ls.probes.cancel_token(params.token)
        ls.watches.cancel_token(params.token)

    @server.feature(WORKSPACE_TRUST_NOTIFICATION)
    def workspace_trust(ls: TorchSanityServer, params: Any) -> None:
        ls.trust_changed(params)

    @server.feature(SERVER_STATUS_REQUEST)
    def server_status(ls: TorchSanityServer, params: Any) -> dict:
        return ls.status()

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
        lsp_protocol.serve_stdio(server)
    finally:
        server.analyser.kill("exit")
        server.probes.shutdown_blocking(timeout=10)
        server.watches.shutdown_blocking(timeout=10)
        code = 0 if lsp_protocol.client_said_shutdown(server.protocol) else 1
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (ValueError, OSError):  # closed by pygls at exit
                pass
    # Worker threads (a stdin reader blocked in readline, an analysis of a huge file) must not keep
    # the process alive once the client is gone.
    os._exit(code)
