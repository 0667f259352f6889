"""Diagnostics kept while a buffer does not parse follow the edits (through the real server): lines
inserted or deleted above move them, an edit over one withdraws it; never left on the wrong line."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pytest_lsp import LanguageClient

from lsp_helpers import diagnostics_for, initialize, open_document, replace_all, wait_until, write_pyproject
from torchsanity.server.lsp_diagnostics import Edit, line_diff, move

BUGGY = """\
import torch
import torch.nn as nn

model = nn.Linear(4, 2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)


def attention(att, B, T, C):
    return att.transpose(1, 2).view(B, T, C)
"""
ADAM_LINE, VIEW_LINE = 4, 8


def change(client: LanguageClient, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
    client.text_document_did_change(
        types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
            content_changes=[
                types.TextDocumentContentChangePartial(
                    range=types.Range(types.Position(*start), types.Position(*end)), text=text
                )
            ],
        )
    )


def lines(diagnostics: list[types.Diagnostic]) -> dict[str, int]:
    return {str(d.code): d.range.start.line for d in diagnostics}


async def publishes(client: LanguageClient, uri: str, version: int, count: int) -> list[list[types.Diagnostic]]:
    """The first ``count`` publishes for ``uri`` at ``version``."""

    def found():
        out = [list(p.diagnostics) for p in client.published if p.uri == uri and p.version == version]
        return out if len(out) >= count else None

    return await wait_until(found, 20, f"{count} publishes of v{version}")


@pytest.mark.asyncio
async def test_kept_findings_follow_edits_while_the_buffer_does_not_parse(client: LanguageClient, tmp_path: Path):
    uri = open_document(client, tmp_path / "moving.py", BUGGY)
    assert lines(await diagnostics_for(client, uri, version=1)) == {"SAN504": ADAM_LINE, "SAN302": VIEW_LINE}
    end = BUGGY.count("\n")
    change(client, uri, 2, (end, 0), (end, 0), "def oops(:\n")  # breaks the syntax
    broken = lines(await diagnostics_for(client, uri, version=2))
    assert broken == {"SAN504": ADAM_LINE, "SAN302": VIEW_LINE, "SAN000": end}

    # Three lines inserted above everything: at once (not after the debounce), and in the analysis of v3.
    change(client, uri, 3, (0, 0), (0, 0), "# one\n# two\n# three\n")
    moved, analysed = await publishes(client, uri, 3, 2)
    expected = {"SAN504": ADAM_LINE + 3, "SAN302": VIEW_LINE + 3, "SAN000": end + 3}
    assert lines(moved) == expected
    assert lines(analysed) == expected
    adam = next(d for d in analysed if d.code == "SAN504")
    assert (adam.range.start.character, adam.range.end.character) == (12, 28)  # still on `torch.optim.Adam`

    # Text inserted before a finding on its own line shifts its columns.
    change(client, uri, 4, (ADAM_LINE + 3, 0), (ADAM_LINE + 3, 0), "x = 1; ")
    moved = await diagnostics_for(client, uri, version=4)
    adam = next(d for d in moved if d.code == "SAN504")
    assert (adam.range.start.line, adam.range.start.character) == (ADAM_LINE + 3, 19)

    # Lines deleted above (the three comments): back up.
    change(client, uri, 5, (0, 0), (3, 0), "")
    assert lines(await diagnostics_for(client, uri, version=5)) == {
        "SAN504": ADAM_LINE, "SAN302": VIEW_LINE, "SAN000": end
    }

    # An edit over a finding withdraws it (the code it describes changed); the others stay.
    change(client, uri, 6, (VIEW_LINE, 31), (VIEW_LINE, 35), "reshape")
    assert lines(await diagnostics_for(client, uri, version=6)) == {"SAN504": ADAM_LINE, "SAN000": end}

    # Parsing again: a fresh analysis, nothing kept.
    change(client, uri, 7, (end, 0), (end + 1, 0), "")
    fixed = await diagnostics_for(client, uri, version=7)
    assert lines(fixed) == {"SAN504": ADAM_LINE}


@pytest.mark.asyncio
async def test_whole_document_changes_move_kept_findings(client: LanguageClient, tmp_path: Path):
    """Clients that send the whole text (no range): the lines that differ are the edit."""
    uri = open_document(client, tmp_path / "whole.py", BUGGY)
    await diagnostics_for(client, uri, version=1)
    replace_all(client, uri, BUGGY + "def oops(:\n", 2)
    await diagnostics_for(client, uri, version=2)
    replace_all(client, uri, "import os\nimport sys\n" + BUGGY + "def oops(:\n", 3)
    moved = await diagnostics_for(client, uri, version=3)
    assert lines(moved)["SAN504"] == ADAM_LINE + 2 and lines(moved)["SAN302"] == VIEW_LINE + 2


@pytest.mark.asyncio
async def test_on_save_mode_moves_diagnostics_until_the_next_analysis(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    write_pyproject(tmp_path)
    await initialize(client, tmp_path, settings={"run": "onSave"})
    uri = open_document(client, tmp_path / "save.py", BUGGY)
    await diagnostics_for(client, uri, version=1)
    change(client, uri, 2, (0, 0), (0, 0), "\n\n")
    assert lines(await diagnostics_for(client, uri, version=2)) == {"SAN504": ADAM_LINE + 2, "SAN302": VIEW_LINE + 2}


@pytest.mark.parametrize(
    "edit, expected",
    [
        (Edit(types.Position(0, 0), types.Position(0, 0), "a\nb\n"), ((5, 4), (5, 8))),  # lines above
        (Edit(types.Position(3, 0), types.Position(3, 2), "xyz"), ((3, 5), (3, 9))),  # same line, before
        (Edit(types.Position(3, 9), types.Position(3, 9), "!"), ((3, 4), (3, 8))),  # same line, after
        (Edit(types.Position(3, 5), types.Position(3, 6), ""), None),  # inside: withdrawn
        (Edit(types.Position(1, 0), types.Position(3, 1), "q"), ((1, 4), (1, 8))),  # joins lines above
        (Edit(types.Position(3, 1), types.Position(3, 1), "🔥\n  "), ((4, 5), (4, 9))),  # UTF-16: the emoji is 2
    ],
)
def test_move_one_range(edit: Edit, expected):
    diagnostic = types.Diagnostic(range=types.Range(types.Position(3, 4), types.Position(3, 8)), message="m")
    moved, changed = move([diagnostic], edit, "utf-16")
    if expected is None:
        assert moved == [] and changed
    else:
        (got,) = moved
        assert ((got.range.start.line, got.range.start.character), (got.range.end.line, got.range.end.character)) == expected


def test_line_diff_is_the_lines_that_differ():
    edit = line_diff("a\nb\nc\n", "a\nx\ny\nc\n")
    assert (edit.start, edit.end, edit.text) == (types.Position(1, 0), types.Position(2, 0), "x\ny\n")
    assert line_diff("a\n", "a\n").text == ""
