"""Helpers for the `torchsanity check` / `torchsanity rule` tests: the real CLI entry point, in-process
(``cli``) or as a real child process (``cli_process``)."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Run ``torchsanity ARGS…`` in-process with ``tmp_path`` (or ``cwd``) as the working directory."""
    from torchsanity.server.cli import main

    def run(*args: str, cwd: Path | None = None) -> Result:
        monkeypatch.chdir(cwd or tmp_path)
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exit_:  # argparse usage errors
            code = exit_.code if isinstance(exit_.code, int) else 2
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return run


@pytest.fixture
def cli_process(tmp_path):
    """Run ``python -m torchsanity.server ARGS…`` as a child process (the real console entry)."""

    def run(*args: str, cwd: Path | None = None, timeout: float = 120) -> Result:
        env = dict(os.environ, PYTHONIOENCODING="utf-8")
        proc = subprocess.run(
            [sys.executable, "-m", "torchsanity.server", *map(str, args)],
            cwd=cwd or tmp_path, capture_output=True, text=True, timeout=timeout, env=env,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
