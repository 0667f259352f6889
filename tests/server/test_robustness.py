"""The server never dies on user input: malformed requests, unknown documents, a rule that raises,
huge files; problems go to the log, never into a pop-up."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from concurrent.futures import Future
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_helpers import write_pyproject, codes, diagnostics_for, initialize, make_client, open_document, server_status

pytestmark = pytest.mark.asyncio

BUGGY = "import torch\nopt = torch.optim.Adam(params, weight_decay=1e-4)\n"


def send_raw(client: LanguageClient, message: dict) -> Future | None:
    """Write a JSON-RPC message as bytes, bypassing the client's type checks."""
    future: Future | None = None
    if "id" in message:
        future = Future()
        client.protocol._request_futures[message["id"]] = future
    body = json.dumps(message).encode("utf-8")
    client.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
    return future


async def answer(future: Future, timeout: float = 10.0):
    return await asyncio.wait_for(asyncio.wrap_future(future), timeout)


async def hover(client: LanguageClient, uri: str, line: int, character: int):
    return await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(line, character))
    )


async def test_malformed_requests_get_errors_and_the_server_goes_on(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "train.py", BUGGY)
    await diagnostics_for(client, uri, version=1)

    bad_hover = send_raw(
        client, {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": "textDocument/hover", "params": {"textDocument": 5}}
    )
    with pytest.raises(JsonRpcException) as info:
        await answer(bad_hover)
    assert info.value.code == -32602  # invalid params

    unknown = send_raw(client, {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": "torchsanity/nope", "params": {}})
    with pytest.raises(JsonRpcException) as info:
        await answer(unknown)
    assert info.value.code == -32601  # method not found

    bad_probe = send_raw(
        client, {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": "torchsanity/runProbe", "params": {"uri": 3}}
    )
    with pytest.raises(JsonRpcException) as info:
        await answer(bad_probe)
    assert info.value.code == -32602

    no_params = send_raw(client, {"jsonrpc": "2.0", "id": str(uuid.uuid4()), "method": "textDocument/codeAction"})
    with pytest.raises(JsonRpcException):
        await answer(no_params)

    # Broken notifications: a didOpen without text, a change to a document that was never opened,
    # a message that is not JSON-RPC at all.
    send_raw(client, {"jsonrpc": "2.0", "method": "textDocument/didOpen", "params": {"textDocument": {"uri": uri}}})
    send_raw(
        client,
        {
            "jsonrpc": "2.0",
            "method": "textDocument/didChange",
            "params": {
                "textDocument": {"uri": from_fs_path(str(tmp_path / "never.py")), "version": 2},
                "contentChanges": [{"text": "x"}],
            },
        },
    )
    send_raw(client, {"hello": "world"})
    body = b"{not json"
    client.protocol.writer.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)

    # Requests about unknown documents answer nothing, not an error.
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=from_fs_path(str(tmp_path / "never.py"))),
            range=types.Range(types.Position(0, 0), types.Position(0, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    assert result is None

    # The next request is answered normally.
    result = await hover(client, uri, 1, 20)
    assert result is not None and "SAN504" in result.contents.value
    assert client.messages == []  # nothing popped up
    assert any("server error" in m.message for m in client.log_messages)  # the bad didChange, logged


async def test_unparseable_and_binary_ish_files(client: LanguageClient, tmp_path: Path):
    cases = {
        "syntax.py": "def f(:\n    pass\n",
        "nul.py": "x = 1\x00\n",
        "deep.py": "x = " + "(" * 500 + "1" + ")" * 500 + "\n",
        "formfeed.py": "import torch\n\x0c\nopt = torch.optim.Adam(p, weight_decay=0.1)\n",
        "crlf.py": "import torch\r\nopt = torch.optim.Adam(p, weight_decay=0.1)\r\n",
        "empty.py": "",
    }
    uris = {name: open_document(client, tmp_path / name, text) for name, text in cases.items()}
    results = {name: await diagnostics_for(client, uri, version=1) for name, uri in uris.items()}
    assert codes(results["syntax.py"]) == ["SAN000"]
    assert codes(results["nul.py"]) == ["SAN000"]
    assert codes(results["formfeed.py"]) == ["SAN504"]
    assert results["formfeed.py"][0].range.start.line == 2  # a form feed is not a line break
    assert codes(results["crlf.py"]) == ["SAN504"] and results["crlf.py"][0].range.start.line == 1
    assert results["empty.py"] == []
    # An incremental edit after the form feed lands where the client put it.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uris["formfeed.py"], version=2),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(2, 22), types.Position(2, 22)), text="W"
                )
            ],
        )
    )
    assert await diagnostics_for(client, uris["formfeed.py"], version=2) == []
    assert (await hover(client, uris["syntax.py"], 0, 0)) is None


async def test_big_file_does_not_block_other_requests(client: LanguageClient, tmp_path: Path):
    body = "".join(
        f"def step_{i}(model, x, y):\n    out = model(x).transpose(1, 2).view(-1)\n    return out\n\n" for i in range(600)
    )
    big = open_document(client, tmp_path / "big.py", "import torch\n" + body)
    await asyncio.sleep(0.1)  # the analysis of the big file is under way in the worker
    # Requests are answered while the big file is analysed, not after it.
    status = await server_status(client)
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=from_fs_path(str(tmp_path / "unknown.py"))),
            range=types.Range(types.Position(0, 0), types.Position(0, 0)),
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    answered = time.perf_counter()
    assert result is None and status["documents"]
    big_diags = await diagnostics_for(client, big, version=1, timeout=120)
    assert len(big_diags) == 600
    analysis_ms = next(d["lastAnalysisMs"] for d in (await server_status(client))["documents"] if d["uri"] == big)
    if analysis_ms > 1000:  # long enough that an answer after it would tell
        assert answered < client.publish_times[(big, 1)]


FAULTY = ClientServerConfig(
    server_command=[sys.executable, str(Path(__file__).parent / "fixtures" / "faulty_server.py")],
    client_factory=make_client,
)


@pytest_lsp.fixture(config=FAULTY)
async def faulty_client(lsp_client: LanguageClient, tmp_path: Path):
    write_pyproject(tmp_path, also=("SAN999",))
    await initialize(lsp_client, tmp_path)
    yield
    await lsp_client.shutdown_session()


async def test_a_rule_that_raises_is_logged_once_and_skipped(faulty_client: LanguageClient, tmp_path: Path):
    client = faulty_client
    first = open_document(client, tmp_path / "one.py", BUGGY)
    second = open_document(client, tmp_path / "two.py", BUGGY + "y = 1\n")
    assert codes(await diagnostics_for(client, first, version=1)) == ["SAN504"]
    assert codes(await diagnostics_for(client, second, version=1)) == ["SAN504"]
    boom = [m for m in client.log_messages if "internal error in SAN999" in m.message]
    assert len(boom) == 1
    assert "ZeroDivisionError" in boom[0].message
    assert client.messages == []


async def test_utf8_position_encoding(bare_client: LanguageClient, tmp_path: Path):
    """A client that negotiates UTF-8 positions gets byte columns (CJK = 3 bytes)."""
    from lsp_helpers import capabilities

    client = bare_client
    write_pyproject(tmp_path)
    caps = capabilities()
    caps.general = types.GeneralClientCapabilities(position_encodings=[types.PositionEncodingKind.Utf8])
    result = await client.initialize_session(
        types.InitializeParams(capabilities=caps, root_uri=from_fs_path(str(tmp_path)))
    )
    assert result.capabilities.position_encoding == types.PositionEncodingKind.Utf8
    text = 'import torch\nname = "損失"; opt = torch.optim.Adam(p, weight_decay=0.1)\n'
    uri = open_document(client, tmp_path / "utf8.py", text)
    (adam,) = await diagnostics_for(client, uri, version=1)
    line = text.split("\n")[1]
    prefix = line[: line.index("torch.optim.Adam")]
    assert adam.range.start.character == len(prefix.encode("utf-8"))


async def test_bad_pyproject_is_logged_and_defaults_apply(client: LanguageClient, tmp_path: Path):
    sub = tmp_path / "pkg"
    sub.mkdir()
    (sub / "pyproject.toml").write_text("[tool.torchsanity]\nselect = 3\n", encoding="utf-8")
    uri = open_document(client, sub / "train.py", BUGGY)
    assert "SAN504" in codes(await diagnostics_for(client, uri, version=1))
    assert any("select" in m.message and "pyproject.toml" in m.message for m in client.log_messages)
    assert client.messages == []


async def test_probe_command_is_registered_and_validates(client: LanguageClient, tmp_path: Path):
    with pytest.raises(JsonRpcException) as info:
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(
                command="torchsanity.runProbe", arguments=[{"uri": from_fs_path(str(tmp_path / "missing.py"))}]
            )
        )
    assert "no such file" in info.value.message
    with pytest.raises(JsonRpcException):
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="torchsanity.runProbe", arguments=[])
        )
    script = tmp_path / "train.py"
    script.write_text("print('hi')\n", encoding="utf-8")
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async(
            "torchsanity/runProbe", {"uri": from_fs_path(str(script)), "checks": ["vibes"]}
        )
    assert info.value.code == -32602 and "vibes" in info.value.message
    assert (await server_status(client))["probes"] == []


async def test_an_analysis_over_its_time_budget_is_stopped(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    write_pyproject(tmp_path)
    await initialize(client, tmp_path, settings={"analysisTimeoutMs": 200})
    body = "".join(
        f"def step_{i}(model, x, y):\n    x, y = x.to(d), y.to(d)\n    return model(x).transpose(1, 2).view(-1)\n\n"
        for i in range(1500)
    )
    big = open_document(client, tmp_path / "huge.py", "import torch\n" + body)
    (stopped,) = await diagnostics_for(client, big, version=1, timeout=60)
    assert stopped.code == "SAN000"  # a file-level problem, as in the CLI
    assert "stopped analysing" in stopped.message
    assert stopped.severity == types.DiagnosticSeverity.Warning
    assert any("stopped analysing" in m.message for m in client.log_messages)
    # The worker is back for the next file.
    small = open_document(client, tmp_path / "small.py", BUGGY)
    assert codes(await diagnostics_for(client, small, version=1, timeout=60)) == ["SAN504"]
    assert client.messages == []


async def test_an_outdated_long_analysis_is_abandoned(client: LanguageClient, tmp_path: Path):
    """The text of a long analysis changes under it: the server stops it (after a grace period) and
    publishes the new text's diagnostics; nothing of the old text is published for the new version."""
    body = "".join(
        f"def step_{i}(model, x, y):\n    out = model(x).transpose(1, 2).view(-1)\n    return out\n\n" for i in range(900)
    )
    uri = open_document(client, tmp_path / "long.py", "import torch\n" + body)
    await asyncio.sleep(2.5)
    from lsp_helpers import replace_all

    replace_all(client, uri, BUGGY, 2)
    assert codes(await diagnostics_for(client, uri, version=2, timeout=120)) == ["SAN504"]
    assert (await hover(client, uri, 1, 20)) is not None
