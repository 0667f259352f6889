"""What the packaging tests share: the repository root and the one version source."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
REPOSITORY = "https://github.com/torchsanity/torchsanity"
# (code, line) pairs the README shows for examples/buggy_training.py: an installed torchsanity must report them.
EXAMPLE_FINDINGS = {("SAN701", 15), ("SAN301", 21), ("SAN101", 48), ("SAN601", 52)}


def package_version() -> str:
    """`__version__` of torchsanity.server, read from the source (what pyproject.toml's dynamic version reads)."""
    text = (ROOT / "server" / "__init__.py").read_text(encoding="utf-8")
    return re.search(r'^__version__ = "([^"]+)"$', text, re.M).group(1)


def clean_env() -> dict[str, str]:
    """The environment of a user's shell: no PYTHONPATH or virtualenv of ours leaking in."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV", "PYTHONSAFEPATH")}
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run(cmd: list[str], cwd: Path, **kwargs) -> subprocess.CompletedProcess:
    """A command in a clean environment, its output captured."""
    return subprocess.run(cmd, cwd=cwd, env=kwargs.pop("env", None) or clean_env(), capture_output=True, text=True,
                          timeout=600, **kwargs)
