"""`torchsanity/watch` through the real server over stdio (pytest-lsp), real torch on CPU: live updates with the
metrics records, `$/progress`, the report; verdicts as diagnostics on the lines they concern; stopping by
`torchsanity/watchStop`, `$/cancelRequest` and the progress token, each leaving no process behind; refused in an
untrusted workspace; the "Watch Training Run" lens next to the probe's."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient

from lsp_helpers import SERVER_COMMAND, initialize, make_client, open_document, server_status, wait_until, write_pyproject
from torchsanity.server.lsp_settings import to_plain

pytest.importorskip("torch")
pytestmark = pytest.mark.asyncio

SCRIPTS = Path(__file__).resolve().parents[1] / "watch" / "scripts"
UNTRUSTED = -32803


def _client() -> LanguageClient:
    client = make_client()
    client.watch_updates = []  # type: ignore[attr-defined]

    @client.feature("torchsanity/watchUpdate")
    def watch_update(client_: LanguageClient, params: Any) -> None:
        client_.watch_updates.append(to_plain(params))  # type: ignore[attr-defined]

    return client


CONFIG = ClientServerConfig(server_command=SERVER_COMMAND, client_factory=_client,
                            server_env=dict(os.environ, OMP_NUM_THREADS="1"))


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, tmp_path: Path):
    write_pyproject(tmp_path)
    await initialize(lsp_client, tmp_path)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def bare_client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


def copy(tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    shutil.copy(SCRIPTS / name, target)
    return target


def running(script: Path) -> list[int]:
    """The processes whose command line names ``script`` (the guard and the watched script)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                if str(script).encode() in fh.read().split(b"\0"):
                    with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
                        text = stat.read()
                    if text[text.rindex(")") + 2:].split()[0] not in ("Z", "X"):
                        found.append(int(pid))
        except OSError:
            continue
    return found


def steps_of(updates: list[dict], uri: str) -> list[int]:
    return [r["step"] for u in updates if u["uri"] == uri for r in u["records"] if r.get("kind") == "step"]


async def watch(client: LanguageClient, params: dict, msg_id: str | None = None) -> dict:
    return to_plain(await client.protocol.send_request_async("torchsanity/watch", params, msg_id=msg_id))


async def test_watch_streams_metrics_and_progress_and_answers_the_report(client: LanguageClient, tmp_path: Path):
    path = copy(tmp_path, "regression_epochs.py")
    uri = from_fs_path(str(path))
    token = "watch-token"
    client.progress_reports[token] = []
    result = await watch(client, {"uri": uri, "args": ["--epochs", "3", "--pause", "0.01"], "every": 10,
                                  "device": "cpu", "workDoneToken": token})
    assert result["status"] == "completed" and result["exitCode"] == 0, result["report"].get("error")
    report = result["report"]
    assert report["steps"] == 60 and report["verdicts"] == [] and report["stopped"] == "finished"
    updates = client.watch_updates
    # every step record arrived, in order, spread over several live updates before the end
    assert steps_of(updates, uri) == list(range(1, 61))
    assert len([u for u in updates if u["records"]]) >= 3
    kinds = {r["kind"] for u in updates for r in u["records"]}
    assert {"start", "layers", "step", "sample", "end"} <= kinds
    losses = [r["loss"] for u in updates for r in u["records"] if r.get("kind") == "step"]
    assert losses == report["series"]["loss"]
    assert updates[-1]["done"] is True and updates[-1]["status"] == "completed" and updates[-1]["step"] == 60
    values = client.progress_reports[token]
    assert isinstance(values[0], types.WorkDoneProgressBegin) and values[0].cancellable
    assert isinstance(values[-1], types.WorkDoneProgressEnd) and values[-1].message == "completed: 60 step(s)"
    messages = [v.message for v in values if isinstance(v, types.WorkDoneProgressReport)]
    assert messages and all(m.startswith("step ") and " · loss " in m for m in messages)
    assert not [p for p in client.published if p.uri == uri and p.diagnostics]


async def test_verdicts_are_diagnostics_on_the_optimizer_lr_and_the_loss(client: LanguageClient, tmp_path: Path):
    path = copy(tmp_path, "diverging_lr.py")
    text = path.read_text(encoding="utf-8")
    uri = open_document(client, path, text)
    result = await watch(client, {"uri": uri, "device": "cpu"})
    assert result["status"] == "completed"
    verdicts = {v["id"]: v for v in result["report"]["verdicts"]}
    assert "divergence" in verdicts
    streamed = [v["id"] for u in client.watch_updates for v in u["verdicts"]]
    assert sorted(streamed) == sorted(verdicts)  # each verdict sent once, as it fired

    def watch_diagnostics() -> list[types.Diagnostic]:
        published = [p for p in client.published if p.uri == uri]
        return [d for d in (published[-1].diagnostics if published else []) if d.source == "torchsanity-watch"]

    await wait_until(lambda: any(d.code == "divergence" for d in watch_diagnostics()), what="divergence diagnostic")
    lines = text.splitlines()
    by_code = {d.code: d for d in watch_diagnostics()}
    divergence = by_code["divergence"]
    line = lines[divergence.range.start.line]
    assert line[divergence.range.start.character:divergence.range.end.character] == "lr=0.05"
    assert divergence.severity == types.DiagnosticSeverity.Error
    assert "lower the learning rate" in divergence.message and f"step {verdicts['divergence']['step']}" in divergence.message
    if "non-finite" in by_code:  # the loss blew up to inf/nan: on the loss the script computes
        d = by_code["non-finite"]
        assert lines[d.range.start.line][d.range.start.character:d.range.end.character] == "criterion(model(xb), yb)"
    # the static diagnostics are still there next to them
    assert set(by_code) <= set(verdicts)


async def test_watch_stop_notification_ends_the_tree_and_keeps_the_report(client: LanguageClient, tmp_path: Path):
    path = copy(tmp_path, "regression_epochs.py")
    uri = from_fs_path(str(path))
    task = asyncio.ensure_future(watch(client, {"uri": uri, "args": ["--epochs", "1000", "--pause", "0.01"],
                                                "device": "cpu"}))
    await wait_until(lambda: len(steps_of(client.watch_updates, uri)) >= 20, timeout=150, what="20 steps")
    assert running(path), "the script runs"
    assert (await server_status(client))["watches"] == [uri]
    client.protocol.notify("torchsanity/watchStop", {"uri": uri})
    result = await asyncio.wait_for(task, 60)
    assert result["status"] == "stopped" and result["report"]["steps"] >= 20
    assert "error" not in result["report"]
    assert client.watch_updates[-1]["done"] and client.watch_updates[-1]["status"] == "stopped"
    await wait_until(lambda: not running(path), timeout=20, what="the tree to end")
    assert (await server_status(client))["watches"] == []


async def test_cancel_request_and_progress_cancel_end_the_tree(client: LanguageClient, tmp_path: Path):
    path = copy(tmp_path, "regression_epochs.py")
    uri = from_fs_path(str(path))
    params = {"uri": uri, "args": ["--epochs", "1000", "--pause", "0.01"], "device": "cpu"}
    msg_id = str(uuid.uuid4())
    future = client.protocol.send_request("torchsanity/watch", params, msg_id=msg_id)
    await wait_until(lambda: running(path) and steps_of(client.watch_updates, uri), timeout=150, what="a step")
    client.protocol.notify("$/cancelRequest", types.CancelParams(id=msg_id))
    with pytest.raises(JsonRpcException) as info:
        await asyncio.wait_for(asyncio.wrap_future(future), 60)
    assert info.value.code == -32800  # request cancelled
    await wait_until(lambda: not running(path), timeout=20, what="the tree to end")

    token = "cancel-me"
    client.progress_reports[token] = []
    task = asyncio.ensure_future(watch(client, {**params, "workDoneToken": token}))
    await wait_until(lambda: any(isinstance(v, types.WorkDoneProgressReport) for v in client.progress_reports[token]),
                     timeout=150, what="progress")
    client.protocol.notify(types.WINDOW_WORK_DONE_PROGRESS_CANCEL, types.WorkDoneProgressCancelParams(token=token))
    result = await asyncio.wait_for(task, 60)
    assert result["status"] == "stopped"
    await wait_until(lambda: not running(path), timeout=20, what="the tree to end")


async def test_untrusted_workspace_refuses_the_watch_and_shows_no_watch_lens(bare_client: LanguageClient,
                                                                            tmp_path: Path):
    write_pyproject(tmp_path)
    await bare_client.initialize_session(types.InitializeParams(
        capabilities=types.ClientCapabilities(), root_uri=from_fs_path(str(tmp_path)),
        initialization_options={"workspaceTrusted": False}))
    path = copy(tmp_path, "regression_epochs.py")
    uri = open_document(bare_client, path, path.read_text(encoding="utf-8"))
    with pytest.raises(JsonRpcException) as info:
        await watch(bare_client, {"uri": uri, "device": "cpu"})
    assert info.value.code == UNTRUSTED and "not trusted" in info.value.message
    assert not running(path)
    lens_params = types.CodeLensParams(text_document=types.TextDocumentIdentifier(uri=uri))
    titles = [lens.command.title for lens in await bare_client.text_document_code_lens_async(lens_params) or []]
    assert titles and not any("Watch" in t for t in titles)
    bare_client.protocol.notify("torchsanity/workspaceTrust", {"trusted": True})

    async def commands() -> list[tuple[str, str]]:
        found = await bare_client.text_document_code_lens_async(lens_params) or []
        return [(lens.command.command, lens.command.title) for lens in found]

    deadline = asyncio.get_running_loop().time() + 20
    while ("torchsanity.watchTrainingRun", "Watch Training Run") not in await commands():
        assert asyncio.get_running_loop().time() < deadline, await commands()
        await asyncio.sleep(0.2)
    assert await commands() == [("torchsanity.runSanityProbe", "Run Sanity Probe"),
                                ("torchsanity.watchTrainingRun", "Watch Training Run")]


async def test_bad_params_are_invalid_params(client: LanguageClient, tmp_path: Path):
    path = copy(tmp_path, "regression_epochs.py")
    uri = from_fs_path(str(path))
    for params in ({"uri": "untitled:1"}, {"uri": uri, "steps": "3"}, {"uri": uri, "device": "tpu"},
                   {"uri": uri, "every": 0}, {"uri": from_fs_path(str(tmp_path / "missing.py"))}):
        with pytest.raises(JsonRpcException) as info:
            await watch(client, params)
        assert info.value.code == -32602, params
    assert not running(path)


async def test_the_watch_settings_fill_in_what_the_request_leaves_out(bare_client: LanguageClient, tmp_path: Path):
    """``torchsanity.watch.*`` (nested, as VS Code answers ``workspace/configuration``) are the request's defaults;
    a value in the request wins."""
    write_pyproject(tmp_path)
    await initialize(bare_client, tmp_path, settings={"watch": {"every": 2, "steps": 5, "epochs": None,
                                                                "timeout": None}})
    path = copy(tmp_path, "regression_epochs.py")
    uri = from_fs_path(str(path))
    args = ["--epochs", "1000", "--pause", "0.01"]
    result = await watch(bare_client, {"uri": uri, "args": args, "device": "cpu"})
    report = result["report"]
    assert result["status"] == "completed", report.get("error")
    assert (report["steps"], report["every"], report["stopped"]) == (5, 2, "steps")
    result = await watch(bare_client, {"uri": uri, "args": args, "device": "cpu", "steps": 7, "every": 3})
    assert (result["report"]["steps"], result["report"]["every"]) == (7, 3)
    assert not running(path)
