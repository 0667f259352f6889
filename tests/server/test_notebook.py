"""Notebook documents: code cells analysed as one program, findings published on their cells."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

from lsp_helpers import apply_workspace_edit, codes, diagnostics_for, wait_until
from torchsanity.analyzers import Config, analyze_source, fix_source

pytestmark = pytest.mark.asyncio

CELLS = [
    (types.NotebookCellKind.Code, "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n"),
    (types.NotebookCellKind.Markup, "# Training\nThe loop below uses the optimizer built above."),
    (
        types.NotebookCellKind.Code,
        "model = nn.Linear(4, 2)\nopt = torch.optim.Adam(model.parameters(), weight_decay=0.1)\n\n"
        "def update(optimizer):\n    optimizer.step()\n",
    ),
    (
        types.NotebookCellKind.Code,
        "%matplotlib inline\nfor x, y in loader:\n    probs = F.softmax(model(x), dim=1)\n"
        "    loss = F.cross_entropy(probs, y)\n    loss.backward()\n    update(opt)",
    ),
]


def open_notebook(client: LanguageClient, path: Path) -> tuple[str, list[str]]:
    path.write_text("{}", encoding="utf-8")
    nb_uri = from_fs_path(str(path))
    cell_uris = [f"vscode-notebook-cell:{path}#cell{i}" for i in range(len(CELLS))]
    client.notebook_document_did_open(
        types.DidOpenNotebookDocumentParams(
            notebook_document=types.NotebookDocument(
                uri=nb_uri,
                notebook_type="jupyter-notebook",
                version=1,
                cells=[types.NotebookCell(kind=kind, document=uri) for (kind, _), uri in zip(CELLS, cell_uris)],
            ),
            cell_text_documents=[
                types.TextDocumentItem(
                    uri=uri,
                    language_id="python" if kind == types.NotebookCellKind.Code else "markdown",
                    version=1,
                    text=text,
                )
                for (kind, text), uri in zip(CELLS, cell_uris)
            ],
        )
    )
    return nb_uri, cell_uris


async def test_loop_split_across_cells(client: LanguageClient, tmp_path: Path):
    nb_uri, cells = open_notebook(client, tmp_path / "train.ipynb")
    cell2 = await diagnostics_for(client, cells[2])
    cell3 = await diagnostics_for(client, cells[3])
    assert codes(await diagnostics_for(client, cells[0])) == []
    assert not [p for p in client.published if p.uri == cells[1]]  # markdown: not analysed
    assert codes(cell2) == ["SAN504"]
    assert [d.range.start.line for d in cell2] == [1]
    # The loop in cell 3 steps through `update` (cell 2) and softmax is `F` (cell 0): both are only
    # found when the cells are one program.
    assert codes(cell3) == ["SAN101", "SAN601"]
    by_code = {d.code: d for d in cell3}
    assert by_code["SAN101"].range.start.line == 1  # after the magic line
    assert by_code["SAN601"].range.start.line == 3
    alone = analyze_source(CELLS[3][1].replace("%matplotlib inline", "pass"), "cell.py", Config.discover(tmp_path))
    assert not alone.findings

    # A quick fix lands on the cell it belongs to.
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=cells[3]),
            range=by_code["SAN101"].range,
            context=types.CodeActionContext(diagnostics=[]),
        )
    )
    (fix,) = [a for a in result if a.is_preferred and "SAN101" in a.title]
    texts = {uri: text for uri, (_, text) in zip(cells, CELLS)}
    fixed = apply_workspace_edit(texts, fix.edit)
    assert fixed[cells[3]].split("\n")[2] == "    opt.zero_grad()"
    assert fixed[cells[2]] == texts[cells[2]]

    # Editing a cell re-analyses the notebook: AdamW in cell 2 clears SAN504, cell 3 keeps its findings.
    count = len(client.published)
    client.notebook_document_did_change(
        types.DidChangeNotebookDocumentParams(
            notebook_document=types.VersionedNotebookDocumentIdentifier(uri=nb_uri, version=2),
            change=types.NotebookDocumentChangeEvent(
                cells=types.NotebookDocumentCellChanges(
                    text_content=[
                        types.NotebookDocumentCellContentChanges(
                            document=types.VersionedTextDocumentIdentifier(uri=cells[2], version=2),
                            changes=[
                                types.TextDocumentContentChangePartial(
                                    range=types.Range(types.Position(1, 21), types.Position(1, 21)), text="W"
                                )
                            ],
                        )
                    ]
                )
            ),
        )
    )
    assert codes(await diagnostics_for(client, cells[2], after=count)) == []
    assert codes(await diagnostics_for(client, cells[3], after=count)) == ["SAN101", "SAN601"]


async def test_fix_all_in_a_notebook_edits_each_cell(client: LanguageClient, tmp_path: Path):
    nb_uri, cells = open_notebook(client, tmp_path / "fix.ipynb")
    await diagnostics_for(client, cells[3])
    result = await client.text_document_code_action_async(
        types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=cells[3]),
            range=types.Range(types.Position(0, 0), types.Position(0, 0)),
            context=types.CodeActionContext(diagnostics=[], only=["source.fixAll"]),
        )
    )
    (fix_all,) = result
    texts = {uri: text for uri, (_, text) in zip(cells, CELLS)}
    fixed = apply_workspace_edit(texts, fix_all.edit)
    assert fixed[cells[0]] == texts[cells[0]]
    assert fixed[cells[1]] == texts[cells[1]]
    assert fixed[cells[3]].startswith("%matplotlib inline\nfor x, y in loader:\n    opt.zero_grad()\n")
    assert not fixed[cells[3]].endswith("\n")  # the cell's own ending is kept

    def program(t: dict) -> str:
        return "\n".join(t[c].replace("%matplotlib inline", "pass").rstrip("\n") for c in (cells[0], cells[2], cells[3]))

    expected, report = fix_source(program(texts), "nb.py", Config.discover(tmp_path))
    assert program(fixed) == expected.rstrip("\n")
    assert "SAN101" not in {f.code for f in report.findings}


async def test_closing_a_notebook_clears_its_cells(client: LanguageClient, tmp_path: Path):
    nb_uri, cells = open_notebook(client, tmp_path / "close.ipynb")
    await diagnostics_for(client, cells[3])
    count = len(client.published)
    client.notebook_document_did_close(
        types.DidCloseNotebookDocumentParams(
            notebook_document=types.NotebookDocumentIdentifier(uri=nb_uri),
            cell_text_documents=[types.TextDocumentIdentifier(uri=u) for u in cells],
        )
    )
    await wait_until(
        lambda: {p.uri for p in client.published[count:] if not p.diagnostics} >= {cells[0], cells[2], cells[3]},
        what="cleared cells",
    )
