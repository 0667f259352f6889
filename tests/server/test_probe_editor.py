"""Probe results that act in the editor, through the real server over stdio and real torch on CPU: diagnostics
are sentences, dropped when the line they point at changes, linked to the static finding that agrees; code
actions set the suggested learning rate and the output bias; the CLI's --step / --batch-dim / --allow-mixing are
request params; the webview's page is the CLI's renderer's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pytest_lsp import LanguageClient

from lsp_helpers import apply_workspace_edit, codes, diagnostics_for, open_document, wait_until
from torchsanity.server.lsp_settings import to_plain
from torchsanity.server.probe_report import render_html
from torchsanity.server.report_page import page_body, webview

pytest.importorskip("torch")
pytestmark = pytest.mark.asyncio

FIXTURES = Path(__file__).parent / "fixtures"
CPU = {"device": "cpu", "timeout": 280, "steps": 20}
DICT_LIKE = re.compile(r"[{}]|'\w+':|\[\{")  # a Python / JSON literal of a dict in text meant for people


def copy(tmp_path: Path, name: str) -> tuple[Path, str]:
    target = tmp_path / name
    shutil.copy(FIXTURES / name, target)
    return target, target.read_text(encoding="utf-8")


async def run_probe(client: LanguageClient, params: dict) -> dict:
    return to_plain(await client.protocol.send_request_async("torchsanity/runProbe", params))


async def probe_diagnostics(client: LanguageClient, uri: str, after: int) -> list[types.Diagnostic]:
    def find():
        for params in client.published[after:]:  # type: ignore[attr-defined]
            if params.uri == uri and any(d.source == "torchsanity-probe" for d in params.diagnostics):
                return params
        return None

    params = await wait_until(find, 30, "probe diagnostics")
    return [d for d in params.diagnostics if d.source == "torchsanity-probe"]


def change_line(client: LanguageClient, uri: str, line: int, old: str, new: str, version: int) -> None:
    client.text_document_did_change(types.DidChangeTextDocumentParams(
        text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
        content_changes=[types.TextDocumentContentChangePartial(
            range=types.Range(start=types.Position(line=line, character=0),
                              end=types.Position(line=line, character=len(old))), text=new)]))


async def actions_at(client: LanguageClient, uri: str, line: int) -> list[types.CodeAction]:
    result = await client.text_document_code_action_async(types.CodeActionParams(
        text_document=types.TextDocumentIdentifier(uri=uri),
        range=types.Range(start=types.Position(line=line, character=0), end=types.Position(line=line, character=0)),
        context=types.CodeActionContext(diagnostics=[])))
    return [a for a in result or [] if isinstance(a, types.CodeAction)]


async def test_a_failure_the_static_check_explains_links_to_it_and_goes_when_its_line_changes(
        client: LanguageClient, tmp_path: Path):
    path, text = copy(tmp_path, "probe_softmax.py")
    uri = open_document(client, path, text)
    static = await diagnostics_for(client, uri, version=1)
    (san601,) = [d for d in static if d.code == "SAN601"]
    count = len(client.published)  # type: ignore[attr-defined]
    result = await run_probe(client, {"uri": uri, "checks": ["initial-loss", "overfit-batch"], **CPU})
    assert result["status"] == "completed"
    (overfit,) = [d for d in await probe_diagnostics(client, uri, count) if d.code == "overfit-batch"]
    # a sentence with the measured values in words, then the agreeing static finding, linked
    assert not DICT_LIKE.search(overfit.message), overfit.message
    assert "measured start" in overfit.message and "the static check SAN601" in overfit.message
    (related,) = overfit.related_information
    assert related.location.uri == uri and related.location.range == san601.range
    assert related.message.startswith("SAN601: ")

    # an edit elsewhere moves it along; an edit of its own line drops it (it spoke of code that is gone)
    lines = text.split("\n")
    change_line(client, uri, 0, lines[0], lines[0] + "  ", 2)
    kept = await diagnostics_for(client, uri, version=2)
    assert "overfit-batch" in codes(kept, "torchsanity-probe")
    line = overfit.range.start.line
    change_line(client, uri, line, lines[line], lines[line].replace("criterion(", "criterion(0 + "), 3)

    def dropped():
        latest = [p for p in client.published if p.uri == uri]  # type: ignore[attr-defined]
        return latest and latest[-1].version == 3 and "overfit-batch" not in codes(latest[-1].diagnostics,
                                                                                   "torchsanity-probe")
    await wait_until(dropped, 20, "the probe diagnostic of the changed line to go")


async def test_set_lr_to_the_suggested_value(client: LanguageClient, tmp_path: Path):
    path, text = copy(tmp_path, "probe_lr_too_high.py")
    uri = open_document(client, path, text)
    count = len(client.published)  # type: ignore[attr-defined]
    result = await run_probe(client, {"uri": uri, "checks": ["lr-range"], **CPU})
    (entry,) = result["report"]["checks"]
    assert entry["status"] == "warn", entry
    (diag,) = await probe_diagnostics(client, uri, count)
    assert not DICT_LIKE.search(diag.message), diag.message
    assert "lr=8.0" in text.split("\n")[diag.range.start.line]  # on the optimizer's line
    actions = [a for a in await actions_at(client, uri, diag.range.start.line) if a.title.startswith("Set lr")]
    (action,) = actions
    fixed = apply_workspace_edit({uri: text}, action.edit)[uri]
    (lr,) = re.findall(r"SGD\(model\.parameters\(\), lr=([^,]+), momentum=0\.9\)", fixed)
    assert float(lr) == pytest.approx(entry["measured"]["suggested"], rel=0.05)
    assert fixed.replace(f"lr={lr}", "lr=8.0") == text  # nothing else changed
    # no action where the probe said nothing
    assert not [a for a in await actions_at(client, uri, 0) if a.title.startswith("Set lr")]


async def test_initialise_the_output_bias_to_the_target_mean_and_the_probe_then_passes(
        client: LanguageClient, tmp_path: Path):
    path, text = copy(tmp_path, "probe_bias_regression.py")
    uri = open_document(client, path, text)
    count = len(client.published)  # type: ignore[attr-defined]
    result = await run_probe(client, {"uri": uri, "checks": ["initial-loss"], **CPU})
    (entry,) = result["report"]["checks"]
    assert entry["status"] == "warn" and "target mean" in entry["message"], entry
    (diag,) = await probe_diagnostics(client, uri, count)
    (action,) = [a for a in await actions_at(client, uri, diag.range.start.line)
                 if a.title.startswith("Initialise the output bias")]
    assert action.title == "Initialise the output bias to the target mean (initial-loss)"
    fixed = apply_workspace_edit({uri: text}, action.edit)[uri]
    inserted = [line for line in fixed.split("\n") if line not in text.split("\n")]
    (line,) = inserted
    assert line.strip().startswith("nn.init.constant_(self.out.bias, ")
    value = float(re.search(r"self\.out\.bias, ([^)]+)\)", line).group(1))
    assert value == pytest.approx(entry["measured"]["target_mean"], rel=1e-3)
    # the fixed script, probed again: the loss now starts where the warning said it would
    path.write_text(fixed, encoding="utf-8")
    again = await run_probe(client, {"uri": uri, "checks": ["initial-loss"], **CPU})
    assert again["report"]["checks"][0]["status"] == "pass", again["report"]["checks"][0]


async def test_step_batch_dim_and_allow_mixing_reach_the_harness(client: LanguageClient, tmp_path: Path):
    path, _ = copy(tmp_path, "probe_healthy.py")
    from pygls.uris import from_fs_path

    uri = from_fs_path(str(path))
    result = await run_probe(client, {"uri": uri, "checks": ["batch-independence"], "step": 2, "batchDim": 0,
                                      "allowMixing": True, **CPU})
    report = result["report"]
    assert report["step"]["index"] == 2
    (entry,) = report["checks"]
    assert entry["status"] == "skip" and "allow-mixing" in entry["message"], entry
    for bad in ({"step": 0}, {"batchDim": -1}, {"allowMixing": "yes"}):
        with pytest.raises(JsonRpcException, match="step|batchDim|allowMixing"):
            await run_probe(client, {"uri": uri, **bad})


async def test_the_webview_page_is_the_cli_renderer_s(client: LanguageClient, tmp_path: Path):
    path, _ = copy(tmp_path, "probe_softmax.py")
    proc = subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", "--format", "json", "--device", "cpu",
                           "--checks", "initial-loss,overfit-batch", "--steps", "20", str(path)],
                          capture_output=True, text=True, timeout=280)
    import json

    report = json.loads(proc.stdout)
    params = {"report": report, "nonce": "bm9uY2Utb2YtdGhlLXRlc3Q=", "cspSource": "vscode-webview://abc",
              "chartUri": "vscode-webview://abc/out/webview/chart.umd.min.js"}
    page = to_plain(await client.protocol.send_request_async("torchsanity/renderReport", params))["html"]
    assert page == render_html(report, webview(params["nonce"], params["cspSource"], params["chartUri"]))
    cli = render_html(report)
    cli_nonce = re.search(r'<script nonce="([^"]+)">', cli).group(1)
    assert page_body(cli).replace(cli_nonce, "N") == page_body(page).replace(params["nonce"], "N")
    with pytest.raises(JsonRpcException, match="unknown report field"):
        await client.protocol.send_request_async("torchsanity/renderReport", {**params, "report": {"nope": 1}})


async def test_a_line_edited_while_the_probe_ran_gets_no_diagnostic(client: LanguageClient, tmp_path: Path):
    import asyncio

    path, text = copy(tmp_path, "probe_softmax.py")
    uri = open_document(client, path, text)
    await diagnostics_for(client, uri, version=1)
    lines = text.split("\n")
    loss_line = lines.index("    loss = criterion(model(xb), yb)")
    running = asyncio.ensure_future(run_probe(client, {"uri": uri, "checks": ["overfit-batch"], **CPU}))
    change_line(client, uri, loss_line, lines[loss_line], "    loss = criterion(model(xb), yb)  # edited", 2)
    result = await running
    assert result["report"]["checks"][0]["status"] == "fail"  # the probe ran the file on disk, which fails
    assert result["report"]["checks"][0]["line"] == loss_line + 1
    await asyncio.sleep(1)
    published = [p for p in client.published if p.uri == uri]  # type: ignore[attr-defined]
    assert "overfit-batch" not in codes(published[-1].diagnostics, "torchsanity-probe")


async def test_check_budget_reaches_the_harness_and_its_diagnostic_names_the_setting(client: LanguageClient,
                                                                                    tmp_path: Path):
    """``checkBudget`` (the ``torchsanity.probe.checkBudget`` setting) cuts the check short; the harness' advice,
    which names ``--check-budget`` on the command line, names the setting in the editor."""
    path, text = copy(tmp_path, "probe_healthy.py")
    uri = open_document(client, path, text)
    await diagnostics_for(client, uri, version=1)
    count = len(client.published)  # type: ignore[attr-defined]
    result = await run_probe(client, {"uri": uri, "checks": ["overfit-batch"], "checkBudget": 1e-6, **CPU})
    assert result["status"] == "completed"
    (check,) = result["report"]["checks"]
    assert "stopped after its 1e-06 s budget" in check["message"] and "--check-budget" in check["message"]
    (overfit,) = [d for d in await probe_diagnostics(client, uri, count) if d.code == "overfit-batch"]
    assert "the `torchsanity.probe.checkBudget` setting" in overfit.message, overfit.message
    assert "--check-budget" not in overfit.message
