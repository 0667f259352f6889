"""Diagnostics through the real server: ranges, UTF-16 columns, debounce, syntax errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from torchsanity.analyzers import Config, analyze_source
from lsp_helpers import write_pyproject, analyses, codes, diagnostics_for, initialize, open_document, replace_all, server_status

pytestmark = pytest.mark.asyncio

BUGGY = """\
import torch
import torch.nn as nn

model = nn.Linear(4, 2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)


def attention(att, B, T, C):
    return att.transpose(1, 2).view(B, T, C)
"""


async def test_buggy_script_codes_and_ranges(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "train.py", BUGGY)
    diagnostics = await diagnostics_for(client, uri, version=1)
    assert codes(diagnostics) == ["SAN302", "SAN504"]
    by_code = {d.code: d for d in diagnostics}
    adam = by_code["SAN504"]
    # `torch.optim.Adam` on line 5 (0-based 4), columns 12..28
    assert adam.range == types.Range(types.Position(4, 12), types.Position(4, 28))
    assert adam.source == "torchsanity"
    assert adam.severity == types.DiagnosticSeverity.Warning
    assert adam.code_description is not None and adam.code_description.href.endswith("SAN504.md")
    view = by_code["SAN302"]
    assert view.range.start.line == 8


async def test_utf16_columns_after_emoji_and_cjk(client: LanguageClient, tmp_path: Path):
    # An emoji is two UTF-16 units, a CJK character one; libcst counts code points.
    text = (
        "import torch\n"
        'label = "損失 🔥"; opt = torch.optim.Adam(params, weight_decay=0.1)\n'
    )
    uri = open_document(client, tmp_path / "emoji.py", text)
    diagnostics = await diagnostics_for(client, uri, version=1)
    (adam,) = [d for d in diagnostics if d.code == "SAN504"]
    line = text.split("\n")[1]
    code_points = line.index("torch.optim.Adam")
    assert adam.range.start.character == code_points + 1  # the emoji counts twice
    assert adam.range.end.character == code_points + 1 + len("torch.optim.Adam")


async def test_burst_of_edits_costs_one_analysis(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    write_pyproject(tmp_path)
    await initialize(client, tmp_path, settings={"debounceMs": 3000})
    uri = open_document(client, tmp_path / "burst.py", "import torch\n")
    await diagnostics_for(client, uri, version=1)
    before = await analyses(client, uri)

    text = "import torch\n"
    version = 1
    for i in range(500):
        version += 1
        if i % 50 == 0:
            text += f"opt{i} = torch.optim.Adam(p, weight_decay=0.{i + 1})\n"
        else:
            text += f"x{i} = {i}\n"
        replace_all(client, uri, text, version)
    diagnostics = await diagnostics_for(client, uri, version=version, timeout=30)
    fresh = analyze_source(text, str(tmp_path / "burst.py"), Config.discover(tmp_path))
    assert codes(diagnostics) == sorted(f.code for f in fresh.findings)
    assert [d.range.start.line for d in diagnostics] == [f.start.line - 1 for f in fresh.findings]
    assert await analyses(client, uri) == before + 1


async def test_incremental_edits_match_a_fresh_analysis(client: LanguageClient, tmp_path: Path):
    """500 rapid incremental didChange edits (default debounce), some of them inside lines after an
    emoji (UTF-16 positions): the final diagnostics are those of a fresh analysis of the final text."""
    text = "import torch\n"
    uri = open_document(client, tmp_path / "inc.py", text)
    await diagnostics_for(client, uri, version=1)
    version = 1
    for i in range(500):
        version += 1
        lines = text.split("\n")
        if i % 10 == 5:
            # Insert after the emoji of the last `y` line: UTF-16 column = code points + 1.
            line_no = max(n for n, line in enumerate(lines) if line.startswith("y"))
            line = lines[line_no]
            column = line.index("🔥") + 1
            rng = types.Range(types.Position(line_no, column + 1), types.Position(line_no, column + 1))
            lines[line_no] = line[:column] + "火" + line[column:]
            new_text = "火"
            text = "\n".join(lines)
        else:
            line_no = len(lines) - 1  # the empty last line
            if i % 100 == 0:
                new_text = f"opt{i} = torch.optim.Adam(p, weight_decay=1e-{i % 5 + 1})\n"
            else:
                new_text = f'y{i} = "🔥{i}"\n'
            rng = types.Range(types.Position(line_no, 0), types.Position(line_no, 0))
            text += new_text
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[types.TextDocumentContentChangePartial(range=rng, text=new_text)],
            )
        )
    # A last edit on an Adam line after all that: its diagnostic must move with it.
    version += 1
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(1, 0), types.Position(1, 0)), text='s = "🔥"; '
                )
            ],
        )
    )
    lines = text.split("\n")
    lines[1] = 's = "🔥"; ' + lines[1]
    text = "\n".join(lines)
    diagnostics = await diagnostics_for(client, uri, version=version, timeout=30)
    fresh = analyze_source(text, str(tmp_path / "inc.py"), Config.discover(tmp_path))
    assert not fresh.problems and len(fresh.findings) == 5
    assert [(d.code, d.range.start.line) for d in diagnostics] == [(f.code, f.start.line - 1) for f in fresh.findings]
    first = next(d for d in diagnostics if d.range.start.line == 1)
    assert first.range.start.character == fresh.findings[0].start.column + 1  # the emoji before it


async def test_syntax_error_keeps_last_good_diagnostics(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "broken.py", BUGGY)
    good = await diagnostics_for(client, uri, version=1)
    assert codes(good) == ["SAN302", "SAN504"]
    broken = BUGGY + "def oops(:\n"
    replace_all(client, uri, broken, 2)
    diagnostics = await diagnostics_for(client, uri, version=2)
    assert codes(diagnostics) == ["SAN000", "SAN302", "SAN504"]  # SAN000: a file-level problem, as in the CLI
    (syntax,) = [d for d in diagnostics if d.code == "SAN000"]
    assert syntax.severity == types.DiagnosticSeverity.Error
    (problem,) = analyze_source(broken, str(tmp_path / "broken.py"), Config.discover(tmp_path)).problems
    assert syntax.message == problem.message
    assert syntax.range.start.line == problem.start.line - 1  # where the engine places it
    # The server is alive and answers the next request normally.
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(4, 20))
    )
    assert hover is not None and "SAN504" in hover.contents.value
    # Fixed again: the syntax error goes away.
    replace_all(client, uri, BUGGY, 3)
    diagnostics = await diagnostics_for(client, uri, version=3)
    assert codes(diagnostics) == ["SAN302", "SAN504"]


async def test_hover_shows_rule_docs(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "hover.py", BUGGY)
    await diagnostics_for(client, uri, version=1)
    hover = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(4, 24))
    )
    assert hover is not None
    assert hover.contents.kind == types.MarkupKind.Markdown
    assert "SAN504 adam-l2-weight-decay" in hover.contents.value
    assert "## Why it matters" in hover.contents.value
    nothing = await client.text_document_hover_async(
        types.HoverParams(text_document=types.TextDocumentIdentifier(uri=uri), position=types.Position(0, 2))
    )
    assert nothing is None


async def test_close_clears_diagnostics(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "closing.py", BUGGY)
    await diagnostics_for(client, uri, version=1)
    count = len(client.published)
    client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert await diagnostics_for(client, uri, after=count) == []


async def test_on_save_mode(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    write_pyproject(tmp_path)
    await initialize(client, tmp_path, settings={"run": "onSave"})
    uri = open_document(client, tmp_path / "save.py", "import torch\n")
    assert await diagnostics_for(client, uri, version=1) == []
    replace_all(client, uri, BUGGY, 2)
    count = len(client.published)
    await server_status(client)
    await asyncio.sleep(0.6)  # longer than the default debounce
    assert not [p for p in client.published[count:] if p.uri == uri]
    client.text_document_did_save(types.DidSaveTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=uri)))
    assert codes(await diagnostics_for(client, uri, version=2)) == ["SAN302", "SAN504"]
