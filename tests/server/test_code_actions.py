"""Quick fixes, noqa, fix-all through the real server: request → apply as a client does → re-check."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from lsp_helpers import apply_workspace_edit, codes, diagnostics_for, open_document, replace_all
from torchsanity.analyzers import Config, fix_source

pytestmark = pytest.mark.asyncio

BUGGY = """\
import torch
import torch.nn as nn

model = nn.Linear(4, 2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)


def attention(att, B, T, C):
    return att.transpose(1, 2).view(B, T, C)  # noqa: E501
"""


async def actions(client: LanguageClient, uri: str, rng: types.Range, only=None, diagnostics=()):
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=uri),
            range=rng,
            context=types.CodeActionContext(diagnostics=list(diagnostics), only=only),
        )
    )
    return list(result or [])


async def test_quick_fix_removes_the_diagnostic(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "train.py", BUGGY)
    diagnostics = await diagnostics_for(client, uri, version=1)
    adam = next(d for d in diagnostics if d.code == "SAN504")
    found = await actions(client, uri, adam.range, diagnostics=[adam])
    fixes = [a for a in found if not a.title.startswith("Ignore")]
    assert len(fixes) == 1
    fix = fixes[0]
    assert fix.kind == types.CodeActionKind.QuickFix
    assert "AdamW" in fix.title and fix.diagnostics[0].code == "SAN504"
    assert "unsafe" in fix.title and not fix.is_preferred  # Adam → AdamW changes the optimizer
    text = apply_workspace_edit({uri: BUGGY}, fix.edit)[uri]
    assert "torch.optim.AdamW(model.parameters()" in text
    replace_all(client, uri, text, 2)
    assert codes(await diagnostics_for(client, uri, version=2)) == ["SAN302"]


async def test_noqa_action_merges_with_existing_noqa(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "noqa.py", BUGGY)
    diagnostics = await diagnostics_for(client, uri, version=1)
    view = next(d for d in diagnostics if d.code == "SAN302")
    found = await actions(client, uri, view.range)
    (noqa,) = [a for a in found if a.title == "Ignore SAN302 on this line"]
    assert not noqa.is_preferred
    text = apply_workspace_edit({uri: BUGGY}, noqa.edit)[uri]
    assert text.split("\n")[8] == "    return att.transpose(1, 2).view(B, T, C)  # noqa: E501, SAN302"
    replace_all(client, uri, text, 2)
    assert codes(await diagnostics_for(client, uri, version=2)) == ["SAN504"]
    # And a line without a noqa gets a fresh one.
    adam = next(d for d in await diagnostics_for(client, uri, version=2) if d.code == "SAN504")
    (noqa,) = [a for a in await actions(client, uri, adam.range) if a.title.startswith("Ignore")]
    text = apply_workspace_edit({uri: text}, noqa.edit)[uri]
    assert text.split("\n")[4].endswith("weight_decay=1e-4)  # noqa: SAN504")
    replace_all(client, uri, text, 3)
    assert codes(await diagnostics_for(client, uri, version=3)) == []


async def test_fix_all_is_one_edit_and_idempotent(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "fixall.py", BUGGY)
    await diagnostics_for(client, uri, version=1)
    whole = types.Range(types.Position(0, 0), types.Position(0, 0))
    # Quick-fix requests do not carry source actions ...
    assert not [a for a in await actions(client, uri, whole) if a.kind.startswith("source")]
    # ... a request for `source.fixAll` (prefix of ours) does.
    (fix_all,) = await actions(client, uri, whole, only=[types.CodeActionKind.SourceFixAll])
    assert fix_all.kind == "source.fixAll.torchsanity"
    (change,) = fix_all.edit.document_changes
    assert len(change.edits) == 1
    assert change.text_document.version == 1
    once = apply_workspace_edit({uri: BUGGY}, fix_all.edit)[uri]
    expected, _ = fix_source(BUGGY, str(tmp_path / "fixall.py"), Config.discover(tmp_path))
    assert once == expected
    assert "AdamW" not in once and ".reshape(B, T, C)" in once  # only safe fixes: SAN504's is unsafe
    replace_all(client, uri, once, 2)
    assert codes(await diagnostics_for(client, uri, version=2)) == ["SAN504"]
    # Twice = once: nothing left to do.
    assert await actions(client, uri, whole, only=["source.fixAll.torchsanity"]) == []


async def test_code_action_right_after_an_edit_uses_the_new_text(client: LanguageClient, tmp_path: Path):
    """No stale fixes: a code action request that arrives before the debounced analysis ran analyses
    the current text first."""
    uri = open_document(client, tmp_path / "stale.py", "import torch\n")
    await diagnostics_for(client, uri, version=1)
    replace_all(client, uri, "\n\n" + BUGGY, 2)
    line = types.Range(types.Position(6, 0), types.Position(6, 80))
    fixes = [a for a in await actions(client, uri, line) if not a.title.startswith("Ignore")]
    assert len(fixes) == 1
    edit = fixes[0].edit.document_changes[0]
    assert edit.text_document.version == 2
    assert edit.edits[0].range.start.line == 6


async def test_unicode_fix_lands_on_the_right_columns(client: LanguageClient, tmp_path: Path):
    text = 'import torch\nname = "🔥🔥"; opt = torch.optim.Adam(p, weight_decay=0.1)\n'
    uri = open_document(client, tmp_path / "uni.py", text)
    diagnostics = await diagnostics_for(client, uri, version=1)
    adam = next(d for d in diagnostics if d.code == "SAN504")
    (fix,) = [a for a in await actions(client, uri, adam.range) if not a.title.startswith("Ignore")]
    fixed = apply_workspace_edit({uri: text}, fix.edit)[uri]
    assert fixed == text.replace("optim.Adam(", "optim.AdamW(")
