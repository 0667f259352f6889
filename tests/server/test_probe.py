"""`torchsanity/runProbe` through the real server, real torch on CPU: progress, report, diagnostics on
the lines the probes name, cancellation (request and progress) that leaves no process behind."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

from lsp_helpers import codes, diagnostics_for, open_document, server_status, wait_until
from torchsanity.server.lsp_settings import to_plain

pytest.importorskip("torch")
pytestmark = pytest.mark.asyncio

FIXTURES = Path(__file__).parent / "fixtures"
FAST = {"checks": ["initial-loss", "overfit-batch"], "steps": 20, "device": "cpu", "timeout": 240}


def script(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return target


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as handle:
            stat = handle.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2 :].split()[0] not in ("Z", "X")


async def run_probe(client: LanguageClient, params: dict, msg_id: str | None = None):
    return to_plain(await client.protocol.send_request_async("torchsanity/runProbe", params, msg_id=msg_id))


async def test_healthy_probe_reports_progress_and_passes(client: LanguageClient, tmp_path: Path):
    path = script(tmp_path, "probe_healthy.py")
    uri = from_fs_path(str(path))
    result = await run_probe(client, {"uri": uri, **FAST})
    assert result["status"] == "completed"
    assert result["exitCode"] == 0, result["report"]
    statuses = {c["id"]: c["status"] for c in result["report"]["checks"]}
    assert statuses == {"initial-loss": "pass", "overfit-batch": "pass"}
    # Progress: a server-created token, begin → reports (checks, steps) → end.
    (token,) = [t for t in client.progress_reports if str(t).startswith("torchsanity-probe-")]
    values = client.progress_reports[token]
    assert isinstance(values[0], types.WorkDoneProgressBegin) and values[0].cancellable
    assert isinstance(values[-1], types.WorkDoneProgressEnd)
    messages = [v.message for v in values if isinstance(v, types.WorkDoneProgressReport)]
    assert any(m and m.startswith("overfit-batch: step") for m in messages)
    assert any(m == "initial-loss: pass" for m in messages)
    # The report notification carries the same JSON.
    await wait_until(lambda: client.probe_reports, what="probe report")
    report = to_plain(client.probe_reports[-1])
    assert report["uri"] == uri and report["status"] == "completed"
    assert report["report"]["checks"][0]["id"] == "initial-loss"
    # Nothing failed: no probe diagnostics.
    assert not [p for p in client.published if p.uri == uri and p.diagnostics]


async def test_failing_probe_puts_diagnostics_on_the_loss_line(client: LanguageClient, tmp_path: Path):
    path = script(tmp_path, "probe_softmax.py")
    text = path.read_text(encoding="utf-8")
    uri = open_document(client, path, text)
    static = await diagnostics_for(client, uri, version=1)
    token = "client-token-1"
    client.progress_reports[token] = []
    count = len(client.published)
    result = await run_probe(client, {"uri": uri, "workDoneToken": token, **FAST})
    assert result["status"] == "completed" and result["exitCode"] == 1
    diagnostics = await diagnostics_for(client, uri, after=count)
    probe = [d for d in diagnostics if d.source == "torchsanity-probe"]
    assert codes(diagnostics, "torchsanity-probe") == ["overfit-batch"]
    loss_line = text.split("\n").index("    loss = criterion(model(xb), yb)")
    assert probe[0].range.start.line == loss_line
    assert probe[0].range.start.character == 4  # the statement, not its indentation
    assert probe[0].severity == types.DiagnosticSeverity.Error
    assert "softmax" in probe[0].message
    # The static findings are still published next to them.
    assert codes(diagnostics) == codes(static)
    # The client's own token carried the progress.
    assert isinstance(client.progress_reports[token][-1], types.WorkDoneProgressEnd)

    # An edit republishes static diagnostics and keeps the probe's.
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=2),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text + "\n")],
        )
    )
    again = await diagnostics_for(client, uri, version=2)
    assert codes(again, "torchsanity-probe") == ["overfit-batch"]


async def test_cancel_request_kills_the_process_tree(client: LanguageClient, tmp_path: Path):
    path = script(tmp_path, "probe_slow.py")
    uri = from_fs_path(str(path))
    pid_file = tmp_path / "pids.txt"
    msg_id = str(uuid.uuid4())
    future = client.protocol.send_request(
        "torchsanity/runProbe", {"uri": uri, "args": [str(pid_file)], "device": "cpu", "timeout": 240}, msg_id=msg_id
    )
    await wait_until(pid_file.exists, timeout=60, what="the script to start")
    pids = [int(p) for p in pid_file.read_text().split()]
    assert all(alive(p) for p in pids)
    client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(asyncio.wrap_future(future), 60)
    assert info.value.code == -32800  # request cancelled
    await wait_until(lambda: not any(alive(p) for p in pids), timeout=20, what="the tree to die")
    assert (await server_status(client))["probes"] == []


async def test_progress_cancel_and_one_probe_per_document(client: LanguageClient, tmp_path: Path):
    path = script(tmp_path, "probe_slow.py")
    uri = from_fs_path(str(path))
    first_pids, second_pids = tmp_path / "first.txt", tmp_path / "second.txt"
    first = asyncio.ensure_future(run_probe(client, {"uri": uri, "args": [str(first_pids)], "device": "cpu"}))
    await wait_until(first_pids.exists, timeout=60, what="the first probe to start")
    pids = [int(p) for p in first_pids.read_text().split()]

    # A second probe of the same document cancels the first.
    token = "second-probe"
    client.progress_reports[token] = []
    second = asyncio.ensure_future(
        run_probe(client, {"uri": uri, "args": [str(second_pids)], "device": "cpu", "workDoneToken": token})
    )
    assert (await asyncio.wait_for(first, 60))["status"] == "superseded"
    await wait_until(lambda: not any(alive(p) for p in pids), timeout=20, what="the first tree to die")
    await wait_until(second_pids.exists, timeout=60, what="the second probe to start")
    pids = [int(p) for p in second_pids.read_text().split()]

    # Cancelling its work-done progress cancels the second.
    client.protocol.notify(types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(second, 60)
    assert result["status"] == "cancelled"
    await wait_until(lambda: not any(alive(p) for p in pids), timeout=20, what="the second tree to die")
    assert isinstance(client.progress_reports[token][-1], types.WorkDoneProgressEnd)


async def test_shutdown_kills_a_running_probe(bare_client: LanguageClient, tmp_path: Path):
    from lsp_helpers import initialize

    client = bare_client
    await initialize(client, tmp_path)
    path = script(tmp_path, "probe_slow.py")
    pid_file = tmp_path / "pids.txt"
    client.protocol.send_request(
        "torchsanity/runProbe", {"uri": from_fs_path(str(path)), "args": [str(pid_file)], "device": "cpu"}
    )
    await wait_until(pid_file.exists, timeout=60, what="the script to start")
    pids = [int(p) for p in pid_file.read_text().split()]
    server_pid = (await server_status(client))["pid"]
    client.server_gone = True
    await client.shutdown_session()
    await wait_until(lambda: not alive(server_pid), timeout=30, what="the server to exit")
    await wait_until(lambda: not any(alive(p) for p in pids), timeout=20, what="the tree to die")
    assert os.path.exists(pid_file)


async def test_client_going_away_kills_a_running_probe(bare_client: LanguageClient, tmp_path: Path):
    """No shutdown, no exit: the client just closes the pipe (crashed editor)."""
    from lsp_helpers import initialize

    client = bare_client
    await initialize(client, tmp_path)
    path = script(tmp_path, "probe_slow.py")
    pid_file = tmp_path / "pids.txt"
    client.protocol.send_request(
        "torchsanity/runProbe", {"uri": from_fs_path(str(path)), "args": [str(pid_file)], "device": "cpu"}
    )
    await wait_until(pid_file.exists, timeout=60, what="the script to start")
    pids = [int(p) for p in pid_file.read_text().split()]
    server_pid = (await server_status(client))["pid"]
    client.server_gone = True
    client._server.stdin.close()
    await wait_until(lambda: not alive(server_pid), timeout=30, what="the server to exit")
    await wait_until(lambda: not any(alive(p) for p in pids), timeout=20, what="the tree to die")


async def test_script_exception_lands_on_its_line(client: LanguageClient, tmp_path: Path):
    path = script(tmp_path, "probe_raises.py")
    uri = from_fs_path(str(path))
    count = len(client.published)
    result = await run_probe(client, {"uri": uri, **FAST})
    assert result["status"] == "completed" and result["exitCode"] == 2
    assert result["report"]["error"]["type"] == "ValueError"
    diagnostics = await diagnostics_for(client, uri, after=count)
    (error,) = [d for d in diagnostics if d.source == "torchsanity-probe"]
    assert error.code == "script-error" and error.range.start.line == 6  # the `raise`
    assert "ValueError: no data in ./data" in error.message
