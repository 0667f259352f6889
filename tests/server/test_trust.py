"""Workspace trust, enforced by the real server (over stdio): no probe while the client says the workspace is
untrusted (``initializationOptions.workspaceTrusted = false``, ``torchsanity/workspaceTrust``)."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest
from lsprotocol import types
from pygls.exceptions import JsonRpcException
from pygls.uris import from_fs_path
from pytest_lsp import LanguageClient

from lsp_helpers import capabilities, diagnostics_for, open_document, server_status, wait_until, write_pyproject
from torchsanity.server.lsp_settings import to_plain

pytestmark = pytest.mark.asyncio

FIXTURES = Path(__file__).parent / "fixtures"
UNTRUSTED = -32803


async def start(client: LanguageClient, root: Path, options: dict | None) -> None:
    write_pyproject(root)
    await client.initialize_session(
        types.InitializeParams(
            capabilities=capabilities(),
            root_uri=from_fs_path(str(root)),
            workspace_folders=[types.WorkspaceFolder(uri=from_fs_path(str(root)), name=root.name)],
            initialization_options=options,
        )
    )


async def probe_error(client: LanguageClient, uri: str) -> JsonRpcException:
    with pytest.raises(JsonRpcException) as info:
        await client.protocol.send_request_async("torchsanity/runProbe", {"uri": uri, "device": "cpu"})
    return info.value


def trust(client: LanguageClient, trusted) -> None:
    client.protocol.notify("torchsanity/workspaceTrust", {"trusted": trusted})


async def test_untrusted_workspace_refuses_probes_until_trusted(bare_client: LanguageClient, tmp_path: Path):
    client = bare_client
    await start(client, tmp_path, {"workspaceTrusted": False})
    script = tmp_path / "train.py"
    uri = open_document(client, script, "import torch\nopt = torch.optim.Adam(p, weight_decay=1e-4)\n")
    # Static analysis runs: it never executes workspace code.
    assert [d.code for d in await diagnostics_for(client, uri, version=1)] == ["SAN504"]
    refused = await probe_error(client, uri)
    assert refused.code == UNTRUSTED and "not trusted" in refused.message
    with pytest.raises(JsonRpcException) as info:
        await client.workspace_execute_command_async(
            types.ExecuteCommandParams(command="torchsanity.runProbe", arguments=[{"uri": uri}])
        )
    assert "not trusted" in info.value.message
    assert (await server_status(client))["trusted"] is False

    # Trusted: the request gets as far as the harness (here: a file that does not exist).
    trust(client, True)
    missing = await probe_error(client, from_fs_path(str(tmp_path / "missing.py")))
    assert missing.code == -32602 and "no such file" in missing.message

    trust(client, False)
    assert (await probe_error(client, uri)).code == UNTRUSTED

    # A flag that is not a boolean is logged and fails closed.
    trust(client, True)
    assert (await server_status(client))["trusted"] is True
    trust(client, "yes")
    assert (await server_status(client))["trusted"] is False
    assert any("workspaceTrust" in m.message and "untrusted" in m.message for m in client.log_messages)


async def test_trusted_by_default(bare_client: LanguageClient, tmp_path: Path):
    """Clients that know nothing of trust (Neovim, Helix) send no option: trusted."""
    await start(bare_client, tmp_path, {"settings": {"run": "onType"}})
    assert (await server_status(bare_client))["trusted"] is True
    missing = await probe_error(bare_client, from_fs_path(str(tmp_path / "missing.py")))
    assert missing.code == -32602


async def test_revoking_trust_cancels_a_running_probe(bare_client: LanguageClient, tmp_path: Path):
    pytest.importorskip("torch")
    client = bare_client
    await start(client, tmp_path, None)
    path = tmp_path / "probe_slow.py"
    shutil.copy(FIXTURES / "probe_slow.py", path)
    pid_file = tmp_path / "pids.txt"
    future = client.protocol.send_request(
        "torchsanity/runProbe",
        {"uri": from_fs_path(str(path)), "args": [str(pid_file)], "device": "cpu", "timeout": 240},
    )
    await wait_until(pid_file.exists, timeout=60, what="the script to start")
    trust(client, False)
    result = to_plain(await asyncio.wait_for(asyncio.wrap_future(future), 60))
    assert result["status"] == "cancelled"
    assert (await server_status(client))["probes"] == []
