"""The Neovim configuration of docs/neovim.md, in a real headless Neovim (skipped without `nvim`)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from lsp_helpers import write_pyproject

DOC = Path(__file__).resolve().parents[2] / "docs" / "neovim.md"
NVIM = shutil.which("nvim")

HARNESS = r"""
vim.defer_fn(function()
  vim.wait(60000, function() return #vim.diagnostic.get(0) > 0 end, 100)
  local lines = {}
  for _, d in ipairs(vim.diagnostic.get(0)) do
    local code = d.code or (d.user_data and d.user_data.lsp and d.user_data.lsp.code)
    table.insert(lines, string.format("%s %d %d %s", tostring(code), d.lnum, d.col, d.source or ""))
  end
  vim.fn.writefile(lines, vim.env.TORCHSANITY_NVIM_OUT)
  vim.cmd("qa!")
end, 10)
"""


def _tested_snippet() -> str:
    text = DOC.read_text(encoding="utf-8")
    after = text.split("<!-- tested: neovim -->", 1)[1]
    return after.split("```lua\n", 1)[1].split("```", 1)[0]


@pytest.mark.skipif(NVIM is None, reason="nvim is not installed")
def test_documented_neovim_config_shows_diagnostics(tmp_path: Path):
    write_pyproject(tmp_path)
    script = tmp_path / "train.py"
    script.write_text("import torch\n\nopt = torch.optim.Adam(params, weight_decay=1e-4)\n", encoding="utf-8")
    init = tmp_path / "init.lua"
    init.write_text(_tested_snippet() + HARNESS, encoding="utf-8")
    out = tmp_path / "diagnostics.txt"
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["TORCHSANITY_NVIM_OUT"] = str(out)
    env["XDG_STATE_HOME"] = env["XDG_DATA_HOME"] = env["XDG_CACHE_HOME"] = str(tmp_path / "xdg")
    subprocess.run(
        [NVIM, "--headless", "-i", "NONE", "-u", str(init), str(script)],
        cwd=tmp_path, env=env, timeout=120, check=False, stdin=subprocess.DEVNULL, capture_output=True,
    )
    assert out.exists(), "Neovim wrote no diagnostics"
    assert out.read_text(encoding="utf-8").split("\n")[0] == "SAN504 2 6 torchsanity"
