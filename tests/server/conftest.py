"""Fixtures: a real LSP client (pytest-lsp) connected to the real server over stdio."""

from __future__ import annotations

from pathlib import Path

import pytest_lsp
from pytest_lsp import LanguageClient

from lsp_helpers import CONFIG, initialize, write_pyproject


@pytest_lsp.fixture(config=CONFIG)
async def client(lsp_client: LanguageClient, tmp_path: Path):
    write_pyproject(tmp_path)
    await initialize(lsp_client, tmp_path)
    yield
    await lsp_client.shutdown_session()


@pytest_lsp.fixture(config=CONFIG)
async def bare_client(lsp_client: LanguageClient):
    """A client the test initialises itself; a test that ends the server sets ``server_gone``."""
    yield
    if not getattr(lsp_client, "server_gone", False):
        await lsp_client.shutdown_session()

