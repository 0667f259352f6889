"""The distributions, built once per test session with `python -m build` (an sdist, then a wheel from the sdist)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from packaging_helpers import ROOT, run


@pytest.fixture(scope="session")
def dists(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    result = run([sys.executable, "-m", "build", "--outdir", str(out), str(ROOT)], cwd=out)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (sdist,) = out.glob("torchsanity-*.tar.gz")
    (wheel,) = out.glob("torchsanity-*.whl")
    return {"sdist": sdist, "wheel": wheel}
