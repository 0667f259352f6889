"""Cross-file findings follow the workspace: the server's project reads the open buffers' unsaved text,
follows changes on disk, and republishes the open files whose findings depend on a changed file."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

from lsp_helpers import (
    analyses,
    capabilities,
    codes,
    diagnostics_for,
    initialize,
    open_document,
    replace_all,
    wait_until,
    write_pyproject,
)

pytestmark = pytest.mark.asyncio

MODEL_SOFTMAX = """\
import torch.nn as nn
import torch.nn.functional as F


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)
"""

MODEL_LOGITS = MODEL_SOFTMAX.replace("F.softmax(self.fc(x), dim=1)", "self.fc(x)")

TRAIN = """\
import torch
import torch.nn as nn

from model import Net

model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
for x, y in loader:
    optimizer.zero_grad()
    out = model(x)
    loss = criterion(out, y)
    loss.backward()
    optimizer.step()
"""

OTHER = """\
import torch

optimizer = torch.optim.Adam([], weight_decay=1e-4)
"""


def published(client: LanguageClient) -> int:
    return len(client.published)  # type: ignore[attr-defined]


async def republished(client: LanguageClient, uri: str, after: int) -> list[str]:
    """The codes of the next publish for ``uri`` after the ``after``-th publish overall."""
    return codes(await diagnostics_for(client, uri, after=after))


async def test_buffer_edit_of_a_sibling_republishes_its_dependent(client: LanguageClient, tmp_path: Path):
    model_uri = open_document(client, tmp_path / "model.py", MODEL_SOFTMAX)
    train_uri = open_document(client, tmp_path / "train.py", TRAIN)
    assert codes(await diagnostics_for(client, train_uri, version=1)) == ["SAN601"]

    # Unsaved: the file on disk still ends in softmax; train.py is not touched.
    mark = published(client)
    replace_all(client, model_uri, MODEL_LOGITS, version=2)
    assert await republished(client, train_uri, mark) == []
    assert (tmp_path / "model.py").read_text(encoding="utf-8") == MODEL_SOFTMAX

    mark = published(client)
    replace_all(client, model_uri, MODEL_SOFTMAX, version=3)
    assert await republished(client, train_uri, mark) == ["SAN601"]


async def test_closing_an_unsaved_sibling_goes_back_to_the_disk(client: LanguageClient, tmp_path: Path):
    model_uri = open_document(client, tmp_path / "model.py", MODEL_SOFTMAX)
    train_uri = open_document(client, tmp_path / "train.py", TRAIN)
    assert codes(await diagnostics_for(client, train_uri, version=1)) == ["SAN601"]
    mark = published(client)
    replace_all(client, model_uri, MODEL_LOGITS, version=2)
    assert await republished(client, train_uri, mark) == []

    mark = published(client)
    client.text_document_did_close(
        types.DidCloseTextDocumentParams(text_document=types.TextDocumentIdentifier(uri=model_uri))
    )
    assert await republished(client, train_uri, mark) == ["SAN601"]  # the disk's softmax again


async def test_an_edit_nothing_depends_on_reanalyses_nothing_else(client: LanguageClient, tmp_path: Path):
    model_uri = open_document(client, tmp_path / "model.py", MODEL_SOFTMAX)
    train_uri = open_document(client, tmp_path / "train.py", TRAIN)
    other_uri = open_document(client, tmp_path / "other.py", OTHER)
    assert codes(await diagnostics_for(client, train_uri, version=1)) == ["SAN601"]
    assert codes(await diagnostics_for(client, other_uri, version=1)) == ["SAN504"]
    await diagnostics_for(client, model_uri, version=1)
    before = {uri: await analyses(client, uri) for uri in (model_uri, train_uri, other_uri)}

    replace_all(client, other_uri, OTHER + "\n# edited\n", version=2)
    await diagnostics_for(client, other_uri, version=2)
    replace_all(client, train_uri, TRAIN + "\n# edited\n", version=2)  # model.py does not import train.py
    assert codes(await diagnostics_for(client, train_uri, version=2)) == ["SAN601"]
    await asyncio.sleep(0.5)  # a wrongly scheduled re-analysis would have run by now

    assert await analyses(client, model_uri) == before[model_uri]
    assert await analyses(client, other_uri) == before[other_uri] + 1
    assert await analyses(client, train_uri) == before[train_uri] + 1


async def test_disk_change_of_a_closed_sibling(bare_client: LanguageClient, tmp_path: Path):
    registrations: list[types.RegistrationParams] = []

    @bare_client.feature(types.CLIENT_REGISTER_CAPABILITY)
    def register(params: types.RegistrationParams) -> None:
        registrations.append(params)

    write_pyproject(tmp_path)
    (tmp_path / "model.py").write_text(MODEL_SOFTMAX, encoding="utf-8")
    caps = capabilities()
    caps.workspace.did_change_watched_files = types.DidChangeWatchedFilesClientCapabilities(dynamic_registration=True)
    await bare_client.initialize_session(
        types.InitializeParams(
            capabilities=caps,
            root_uri=from_fs_path(str(tmp_path)),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(tmp_path)), name=tmp_path.name)],
        )
    )
    train_uri = open_document(bare_client, tmp_path / "train.py", TRAIN)
    assert codes(await diagnostics_for(bare_client, train_uri, version=1)) == ["SAN601"]
    (registration,) = await wait_until(lambda: registrations, what="a file watcher registration")
    (watching,) = [r for r in registration.registrations if r.method == types.WORKSPACE_DID_CHANGE_WATCHED_FILES]
    globs = {w["globPattern"] for w in watching.register_options["watchers"]}
    assert {"**/*.py", "**/pyproject.toml"} <= globs

    model_uri = from_fs_path(str(tmp_path / "model.py"))
    for text, expected in ((MODEL_LOGITS, []), (MODEL_SOFTMAX, ["SAN601"])):
        (tmp_path / "model.py").write_text(text, encoding="utf-8")
        mark = published(bare_client)
        bare_client.workspace_did_change_watched_files(
            types.DidChangeWatchedFilesParams(
                changes=[types.FileEvent(uri=model_uri, type=types.FileChangeType.Changed)]
            )
        )
        assert await republished(bare_client, train_uri, mark) == expected


async def test_a_new_sibling_on_disk_is_found(client: LanguageClient, tmp_path: Path):
    train_uri = open_document(client, tmp_path / "train.py", TRAIN)
    assert codes(await diagnostics_for(client, train_uri, version=1)) == []  # model.py does not exist yet
    (tmp_path / "model.py").write_text(MODEL_SOFTMAX, encoding="utf-8")
    mark = published(client)
    client.workspace_did_change_watched_files(
        types.DidChangeWatchedFilesParams(
            changes=[types.FileEvent(uri=from_fs_path(str(tmp_path / "model.py")), type=types.FileChangeType.Created)]
        )
    )
    assert await republished(client, train_uri, mark) == ["SAN601"]


async def test_a_file_outside_any_folder_still_reads_its_siblings(bare_client: LanguageClient, tmp_path: Path):
    folder = tmp_path / "workspace"
    folder.mkdir()
    loose = tmp_path / "loose"
    loose.mkdir()
    write_pyproject(loose)
    (loose / "model.py").write_text(MODEL_SOFTMAX, encoding="utf-8")
    await initialize(bare_client, folder)
    train_uri = open_document(bare_client, loose / "train.py", TRAIN)
    assert codes(await diagnostics_for(bare_client, train_uri, version=1)) == ["SAN601"]
    model_uri = open_document(bare_client, loose / "model.py", MODEL_SOFTMAX)
    mark = published(bare_client)
    replace_all(bare_client, model_uri, MODEL_LOGITS, version=2)
    assert await republished(bare_client, train_uri, mark) == []
