"""The private pygls members :mod:`torchsanity.server.lsp_protocol` relies on are still there, with the shape it
uses. This test fails on a pygls release the customisations were not verified against: re-check each of them
(and the server tests) before widening ``PYGLS_VERIFIED``."""

from __future__ import annotations

import importlib
import inspect
from importlib.metadata import version

import pytest
from lsprotocol import types
from pygls.protocol import JsonRPCProtocol, LanguageServerProtocol
from pygls.server import JsonRPCServer
from pygls.workspace import TextDocument, Workspace

from torchsanity.server import lsp_protocol
from torchsanity.server.language_server import TorchSanityServer


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:2] if part.isdigit())


def test_pygls_is_a_verified_release():
    lowest, excluded = lsp_protocol.PYGLS_VERIFIED
    installed = _release(version("pygls"))
    assert lowest <= installed < excluded, (
        f"pygls {version('pygls')} is outside the verified range {lowest}..{excluded}: re-check lsp_protocol.py"
    )


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_private_methods_keep_their_signatures():
    assert _parameters(JsonRPCProtocol._send_response) == ["self", "msg_id", "result", "error"]
    assert _parameters(JsonRPCProtocol._handle_cancel_notification) == ["self", "msg_id"]
    assert _parameters(Workspace._create_text_document) == ["self", "doc_uri", "source", "version", "language_id"]
    # What LspWorkspace passes on to the documents it creates.
    for name in ("uri", "source", "version", "language_id", "sync_kind", "position_codec"):
        assert name in _parameters(TextDocument.__init__)
    assert isinstance(inspect.getattr_static(TextDocument, "lines"), property)
    # What serve_stdio drives.
    assert callable(JsonRPCServer.shutdown) and isinstance(inspect.getattr_static(JsonRPCServer, "thread_pool"), property)
    assert _parameters(LanguageServerProtocol.structure_message) == ["self", "data"]
    assert _parameters(LanguageServerProtocol.handle_message) == ["self", "message"]


def test_private_attributes_exist_on_live_objects():
    """Every member listed in PRIVATE_MEMBERS, on a real server and a real workspace."""
    server = TorchSanityServer()
    workspace = Workspace("file:///tmp", types.TextDocumentSyncKind.Incremental, [], "utf-16")
    live = {
        "pygls.protocol.JsonRPCProtocol": server.protocol,
        "pygls.protocol.LanguageServerProtocol": server.protocol,
        "pygls.workspace.Workspace": workspace,
        "pygls.server.JsonRPCServer": server,
    }
    for owner, member in lsp_protocol.PRIVATE_MEMBERS:
        module, _, name = owner.rpartition(".")
        cls = getattr(importlib.import_module(module), name)
        assert isinstance(live[owner], cls)
        assert hasattr(live[owner], member), f"{owner}.{member} is gone"
    assert server.protocol._shutdown is False
    assert server.protocol._workspace is None  # created by initialize
    assert workspace._sync_kind == types.TextDocumentSyncKind.Incremental
    assert workspace._position_codec.encoding == "utf-16"
    assert server._stop_event is None  # set by whoever starts the transport


@pytest.mark.parametrize("text", ["a\fb\n", "a\u2028b\r\nc\rd", "x = 1\x1c\ny"])
def test_lsp_workspace_documents_split_lines_as_lsp(text: str):
    workspace = Workspace("file:///tmp", types.TextDocumentSyncKind.Incremental, [], "utf-16")
    protocol = type("P", (), {"_workspace": workspace})()
    lsp_protocol.install_lsp_workspace(protocol)
    swapped = protocol._workspace
    assert isinstance(swapped, lsp_protocol.LspWorkspace)
    swapped.put_text_document(types.TextDocumentItem(uri="file:///tmp/a.py", language_id="python", version=1, text=text))
    lines = swapped.get_text_document("file:///tmp/a.py").lines
    assert "".join(lines) == text
    assert len(lines) == text.count("\n") + text.count("\r") - text.count("\r\n") + (not text.endswith(("\n", "\r")))
