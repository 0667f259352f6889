"""The language server judges a function with its callers in other files of the workspace folder: the
project index reads the open buffers (unsaved text) and the disk, and an edit of a caller republishes the
callee's findings in the same debounce window."""

from __future__ import annotations

from pathlib import Path

import pytest
from pytest_lsp import LanguageClient

from lsp_helpers import codes, diagnostics_for, initialize, open_document, replace_all, write_pyproject

pytestmark = pytest.mark.asyncio

ENGINE = """\
import torch


def evaluate(model, loader):
    model.eval()
    correct = 0
    for x, y in loader:
        correct += (model(x).argmax(1) == y).sum().item()
    return correct
"""

MAIN = """\
import torch

from engine import evaluate

with torch.no_grad():
    print(evaluate(model, loader))
"""

MAIN_WITH_GRAD = MAIN.replace("with torch.no_grad():\n    print", "if True:\n    print")


async def test_editing_the_caller_republishes_the_callee(bare_client: LanguageClient, tmp_path: Path):
    write_pyproject(tmp_path, also=("SAN202",))
    (tmp_path / "main.py").write_text(MAIN, encoding="utf-8")
    await initialize(bare_client, tmp_path)
    engine_uri = open_document(bare_client, tmp_path / "engine.py", ENGINE)
    assert codes(await diagnostics_for(bare_client, engine_uri, version=1)) == []  # main.py (on disk) decides

    main_uri = open_document(bare_client, tmp_path / "main.py", MAIN)
    await diagnostics_for(bare_client, main_uri, version=1)
    mark = len(bare_client.published)  # type: ignore[attr-defined]
    replace_all(bare_client, main_uri, MAIN_WITH_GRAD, version=2)  # unsaved: the disk still has no_grad
    assert codes(await diagnostics_for(bare_client, engine_uri, after=mark)) == ["SAN202"]

    mark = len(bare_client.published)  # type: ignore[attr-defined]
    replace_all(bare_client, main_uri, MAIN, version=3)
    assert codes(await diagnostics_for(bare_client, engine_uri, after=mark)) == []

