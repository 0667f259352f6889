"""What the VS Code client sends at start-up is what the server reads: ``initializationOptions`` of
``{"settings": <the torchsanity section, as VS Code hands it over>, "workspaceTrusted": <bool>}``
(extension/src/settings.ts ``initializationOptions``), through the real server over stdio. The section is
built from package.json's defaults, so a declared key the server does not know would be logged as unknown."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types
from pygls.uris import from_fs_path
from pytest_lsp import ClientServerConfig, LanguageClient

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ClientServerConfig(server_command=[sys.executable, "-I", "-m", "torchsanity.server", "server"])
BUGGY = "import torch\nopt = torch.optim.Adam(params, weight_decay=1e-4)\n"

pytestmark = pytest.mark.asyncio


def vscode_section(**overrides) -> dict:
    """The ``torchsanity`` section as VS Code's ``getConfiguration().get("torchsanity")`` gives it: nested."""
    properties = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))["contributes"]["configuration"]
    section: dict = {}
    for key, spec in properties["properties"].items():
        group, _, leaf = key.removeprefix("torchsanity.").rpartition(".")
        (section.setdefault(group, {}) if group else section)[leaf] = spec["default"]
    section.update(overrides)
    return section


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient):
    yield
    await lsp_client.shutdown_session()


async def test_vscode_initialization_options_are_read(client: LanguageClient, tmp_path: Path):
    (tmp_path / "pyproject.toml").write_text('[tool.torchsanity]\nselect = ["SAN504"]\n', encoding="utf-8")
    options = {"settings": vscode_section(severity={"SAN504": "error"}), "workspaceTrusted": False}
    await client.initialize_session(
        types.InitializeParams(
            # no workspace/configuration: the settings can only come from initializationOptions
            capabilities=types.ClientCapabilities(),
            root_uri=from_fs_path(str(tmp_path)),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(tmp_path)), name="ws")],
            initialization_options=options,
        )
    )
    script = tmp_path / "train.py"
    script.write_text(BUGGY, encoding="utf-8")
    uri = from_fs_path(str(script))
    client.text_document_did_open(
        types.DidOpenTextDocumentParams(types.TextDocumentItem(uri=uri, language_id="python", version=1, text=BUGGY))
    )
    await client.wait_for_notification(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    diagnostics = client.diagnostics[uri]
    assert [(d.code, d.severity) for d in diagnostics] == [("SAN504", types.DiagnosticSeverity.Error)]
    # every key VS Code sends is known to the server: nothing logged about the settings
    assert not [m.message for m in client.log_messages if "settings" in m.message], client.log_messages

    # `workspaceTrusted: false` is read: the probe is refused
    with pytest.raises(Exception, match="(?i)trust"):
        await client.protocol.send_request_async("torchsanity/runProbe", {"uri": uri})
