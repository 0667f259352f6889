"""Settings through workspace/configuration, per workspace folder, merged over pyproject.toml."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

from lsp_helpers import write_pyproject, capabilities, codes, diagnostics_for, open_document

pytestmark = pytest.mark.asyncio

BUGGY = """\
import torch
opt = torch.optim.Adam(params, weight_decay=1e-4)
y = att.transpose(1, 2).view(B, T, C)
"""


async def test_configuration_change_republishes(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    write_pyproject(tmp_path, 'ignore = ["SAN302"]\n')
    client.set_configuration({"severity": {"SAN504": "error"}}, section="torchsanity")
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(tmp_path)), name="ws")],
        )
    )
    uri = open_document(client, tmp_path / "train.py", BUGGY)
    diagnostics = await diagnostics_for(client, uri, version=1)
    # pyproject ignores SAN302; the editor raises SAN504 to an error.
    assert codes(diagnostics) == ["SAN504"]
    assert diagnostics[0].severity == types.DiagnosticSeverity.Error

    # The user ignores SAN504 in the editor: republished without it.
    client.set_configuration({"ignore": ["SAN504"]}, section="torchsanity")
    count = len(client.published)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    assert codes(await diagnostics_for(client, uri, after=count)) == []

    # select replaces the project's select; ignore adds to the project's ignore.
    client.set_configuration({"select": ["SAN302", "SAN5"]}, section="torchsanity")
    count = len(client.published)
    client.workspace_did_change_configuration(types.DidChangeConfigurationParams(settings=None))
    diagnostics = await diagnostics_for(client, uri, after=count)
    assert codes(diagnostics) == ["SAN504"]  # SAN302 still ignored by pyproject
    assert diagnostics[0].severity == types.DiagnosticSeverity.Warning


async def test_settings_per_workspace_folder(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    write_pyproject(tmp_path)
    client.set_configuration({"ignore": ["SAN504"]}, section="torchsanity", scope_uri=from_fs_path(str(a)))
    client.set_configuration({"ignore": ["SAN302"]}, section="torchsanity", scope_uri=from_fs_path(str(b)))
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            workspace_folders=[
                types.WorkspaceFolder(uri=from_fs_path(str(a)), name="a"),
                types.WorkspaceFolder(uri=from_fs_path(str(b)), name="b"),
            ],
        )
    )
    uri_a = open_document(client, a / "train.py", BUGGY)
    uri_b = open_document(client, b / "train.py", BUGGY)
    assert codes(await diagnostics_for(client, uri_a, version=1)) == ["SAN302"]
    assert codes(await diagnostics_for(client, uri_b, version=1)) == ["SAN504"]


async def test_invalid_settings_are_logged_not_fatal(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    write_pyproject(tmp_path)
    client.set_configuration({"severity": {"SAN504": "loud"}, "run": "sometimes", "debounceMs": -3}, section="torchsanity")
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(tmp_path)), name="ws")],
        )
    )
    uri = open_document(client, tmp_path / "train.py", BUGGY)
    assert codes(await diagnostics_for(client, uri, version=1)) == ["SAN302", "SAN504"]
    logged = "\n".join(m.message for m in client.log_messages)
    assert "loud" in logged and "sometimes" in logged and "debounceMs" in logged
    assert client.messages == []  # no pop-ups


async def test_settings_without_workspace_configuration(bare_client: LanguageClient, tmp_path: Path):
    """Clients without the pull model: initializationOptions, then didChangeConfiguration's settings."""
    client = bare_client
    write_pyproject(tmp_path)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(configuration=False),
            root_uri=from_fs_path(str(tmp_path)),
            initialization_options={"settings": {"ignore": ["SAN302"]}},
        )
    )
    uri = open_document(client, tmp_path / "train.py", BUGGY)
    assert codes(await diagnostics_for(client, uri, version=1)) == ["SAN504"]
    count = len(client.published)
    client.workspace_did_change_configuration(
        types.DidChangeConfigurationParams(settings={"torchsanity": {"ignore": ["SAN504"]}})
    )
    assert codes(await diagnostics_for(client, uri, after=count)) == ["SAN302"]
