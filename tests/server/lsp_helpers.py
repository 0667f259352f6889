"""A real LSP client (pytest-lsp) talking to the real server (``python -m torchsanity.server server``)
over stdio, plus small helpers to wait for what the server publishes."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any, Callable



from lsprotocol import types
from pygls.protocol import default_converter
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient
from pytest_lsp.client import DEFAULT_CLIENT_FEATURES, register_lsp_features



def _server_command() -> list[str]:
    """`python -m torchsanity.server server` (the CLI); if the CLI cannot be imported right now, the
    language server module directly, so these tests test the server and not the rest of the CLI."""
    try:
        from torchsanity.server.cli import build_parser

        build_parser()
        return [sys.executable, "-m", "torchsanity.server", "server"]
    except Exception:  # noqa: BLE001
        return [sys.executable, "-c", "from torchsanity.server.language_server import start_stdio; start_stdio()"]


SERVER_COMMAND = _server_command()


def make_client() -> LanguageClient:
    """pytest-lsp's client, also recording every publishDiagnostics (with its version) and every
    ``torchsanity/probeReport``."""
    client = LanguageClient(converter_factory=default_converter)
    client.published = []  # type: ignore[attr-defined]
    client.probe_reports = []  # type: ignore[attr-defined]
    client.publish_times = {}  # type: ignore[attr-defined]  # (uri, version) -> perf_counter at arrival
    default_publish = DEFAULT_CLIENT_FEATURES[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS]

    def publish(client_: LanguageClient, params: types.PublishDiagnosticsParams) -> None:
        client_.published.append(params)  # type: ignore[attr-defined]
        client_.publish_times.setdefault((params.uri, params.version), time.perf_counter())  # type: ignore[attr-defined]
        default_publish(client_, params)

    def probe_report(client_: LanguageClient, params: Any) -> None:
        client_.probe_reports.append(params)  # type: ignore[attr-defined]

    features = dict(DEFAULT_CLIENT_FEATURES)
    features[types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS] = publish
    features["torchsanity/probeReport"] = probe_report
    register_lsp_features(client, features)
    return client


# The rules these tests exercise. Other rules land and change; the server tests pin the set so that
# they test the server, not the catalog.
SELECT = ["SAN101", "SAN302", "SAN504", "SAN601"]


def write_pyproject(root: Path, extra: str = "", also: tuple[str, ...] = ()) -> None:
    select = ", ".join(f'"{code}"' for code in [*SELECT, *also])
    (root / "pyproject.toml").write_text(f"[tool.torchsanity]\nselect = [{select}]\n{extra}", encoding="utf-8")


CONFIG = ClientServerConfig(server_command=SERVER_COMMAND, client_factory=make_client)


def capabilities(progress: bool = True, configuration: bool = True) -> types.ClientCapabilities:
    return types.ClientCapabilities(
        workspace=types.WorkspaceClientCapabilities(
            configuration=configuration,
            workspace_edit=types.WorkspaceEditClientCapabilities(document_changes=True),
            did_change_configuration=types.DidChangeConfigurationClientCapabilities(dynamic_registration=False),
            workspace_folders=True,
        ),
        text_document=types.TextDocumentClientCapabilities(
            code_action=types.CodeActionClientCapabilities(
                code_action_literal_support=types.ClientCodeActionLiteralOptions(
                    code_action_kind=types.ClientCodeActionKindOptions(value_set=[])
                )
            ),
            hover=types.HoverClientCapabilities(content_format=[types.MarkupKind.Markdown]),
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True),
        ),
        window=types.WindowClientCapabilities(work_done_progress=progress),
        notebook_document=types.NotebookDocumentClientCapabilities(
            synchronization=types.NotebookDocumentSyncClientCapabilities()
        ),
    )


async def initialize(client: LanguageClient, root: Path, settings: dict | None = None, **caps) -> None:
    if settings is not None:
        client.set_configuration(settings, section="torchsanity")
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(**caps),
            root_uri=from_fs_path(str(root)),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(root)), name=root.name)],
        )
    )


async def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


async def diagnostics_for(
    client: LanguageClient, uri: str, version: int | None = None, after: int = 0, timeout: float = 20.0
) -> list[types.Diagnostic]:
    """The diagnostics of the first publish for ``uri`` (with ``version`` if given) after the
    ``after``-th publish overall."""

    def find():
        for params in client.published[after:]:  # type: ignore[attr-defined]
            if params.uri == uri and (version is None or params.version == version):
                return params
        return None

    params = await wait_until(find, timeout, f"diagnostics for {uri} v{version}")
    return list(params.diagnostics)


def open_document(client: LanguageClient, path: Path, text: str, version: int = 1) -> str:
    path.write_text(text, encoding="utf-8")
    uri = from_fs_path(str(path))
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=uri, language_id="python", version=version, text=text)
        )
    )
    return uri


def replace_all(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)],
        )
    )


def apply_text_edits(text: str, edits: list[types.TextEdit]) -> str:
    """Apply LSP edits (UTF-16 positions) to ``text`` the way a client does."""
    lines = text.split("\n")

    def offset(pos: types.Position) -> int:
        line = min(pos.line, len(lines) - 1)
        base = sum(len(l) + 1 for l in lines[:line])
        units = 0
        col = 0
        for ch in lines[line]:
            if units >= pos.character:
                break
            units += 2 if ord(ch) > 0xFFFF else 1
            col += 1
        return base + col

    spans = sorted(((offset(e.range.start), offset(e.range.end), e.new_text) for e in edits), reverse=True)
    for start, end, new in spans:
        text = text[:start] + new + text[end:]
    return text


def apply_workspace_edit(texts: dict[str, str], edit: types.WorkspaceEdit) -> dict[str, str]:
    out = dict(texts)
    for change in edit.document_changes or []:
        out[change.text_document.uri] = apply_text_edits(out[change.text_document.uri], list(change.edits))
    for uri, edits in (edit.changes or {}).items():
        out[uri] = apply_text_edits(out[uri], list(edits))
    return out


def codes(diagnostics: list[types.Diagnostic], source: str = "torchsanity") -> list[str]:
    return sorted(str(d.code) for d in diagnostics if d.source == source)


async def server_status(client: LanguageClient) -> dict:
    from torchsanity.server.lsp_settings import to_plain

    return to_plain(await client.protocol.send_request_async("torchsanity/serverStatus", {}))


async def analyses(client: LanguageClient, uri: str) -> int:
    status = await server_status(client)
    return next(d["analyses"] for d in status["documents"] if d["uri"] == uri)
