"""The PyPI package: `python -m build` (an sdist, then a wheel built from that sdist: conftest.py), `twine check`,
and the wheel installed into a fresh virtual environment that cannot see the source tree, running `torchsanity check`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

from packaging_helpers import EXAMPLE_FINDINGS, ROOT, clean_env, package_version, run

FOLDERS = {"analyzers": "torchsanity/analyzers", "server": "torchsanity/server", "probes": "torchsanity/probes"}


def _source_files() -> set[str]:
    """What the wheel must hold: every module of the three folders and the server's assets, as installed."""
    names = set()
    for folder, package in FOLDERS.items():
        for path in (ROOT / folder).rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
                if path.suffix == ".py" or "assets" in path.relative_to(ROOT / folder).parts:
                    names.add(package + "/" + path.relative_to(ROOT / folder).as_posix())
    return names


def test_build_names_both_distributions_by_the_one_version(dists):
    version = package_version()
    assert dists["sdist"].name == f"torchsanity-{version}.tar.gz"
    assert dists["wheel"].name == f"torchsanity-{version}-py3-none-any.whl"


def test_twine_check_passes(dists):
    result = run([sys.executable, "-m", "twine", "check", "--strict", str(dists["sdist"]), str(dists["wheel"])], cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("PASSED") == 2


def test_sdist_holds_what_the_wheel_is_built_from(dists):
    with tarfile.open(dists["sdist"]) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    for required in ("pyproject.toml", "README.md", "LICENSE", "CHANGELOG.md", "MANIFEST.in"):
        assert required in names
    sources = {name.removeprefix("torchsanity/") for name in _source_files()}  # the folders keep their names
    assert sources - names == set()
    assert not any(name.startswith("tests/") for name in names)


def test_wheel_holds_every_module_and_the_metadata(dists):
    wheel = zipfile.ZipFile(dists["wheel"])
    names = set(wheel.namelist())
    version = package_version()
    package_files = {n for n in names if not n.startswith(f"torchsanity-{version}.dist-info/")}
    assert package_files == _source_files()  # a subpackage missing from pyproject's `packages` shows up here
    meta = Parser().parsestr(wheel.read(f"torchsanity-{version}.dist-info/METADATA").decode())
    assert meta["Version"] == version
    assert meta["License-Expression"] == "MIT"
    assert meta["License-File"] == "LICENSE"
    assert f"torchsanity-{version}.dist-info/licenses/LICENSE" in names
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Repository"] == "https://github.com/torchsanity/torchsanity"
    assert urls["Issues"] == "https://github.com/torchsanity/torchsanity/issues"
    classifiers = meta.get_all("Classifier")
    for minor in (10, 11, 12, 13):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert meta["Requires-Python"] == ">=3.10"
    assert any(r.startswith("libcst") for r in meta.get_all("Requires-Dist"))


@pytest.mark.timeout(900)
def test_wheel_works_in_a_fresh_venv_without_the_source_tree(dists, tmp_path):
    # The wheel and its dependencies (downloaded once, through pip's cache), then an offline install: the proof
    # that `pip install torchsanity` / pipx / `uv tool install` resolve once it is published.
    wheelhouse = tmp_path / "wheelhouse"
    result = run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "--dest", str(wheelhouse),
                   str(dists["wheel"])], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, env=clean_env(), cwd=tmp_path)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    result = run([str(python), "-m", "pip", "install", "--quiet", "--no-index", "--find-links", str(wheelhouse),
                   "torchsanity"], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    work = tmp_path / "project"
    work.mkdir()
    shutil.copy(ROOT / "examples" / "buggy_training.py", work / "train.py")
    located = run([str(python), "-c", "import torchsanity.server, torchsanity.probes; print(torchsanity.server.__file__)"],
                   cwd=work)
    assert located.returncode == 0, located.stderr
    assert Path(located.stdout.strip()).is_relative_to(venv) and not Path(located.stdout.strip()).is_relative_to(ROOT)

    cli = str(bindir / "torchsanity")
    version = run([cli, "--version"], cwd=work)
    assert version.stdout.strip() == f"torchsanity {package_version()}"

    installed = run([cli, "check", "train.py", "--format", "json"], cwd=work)
    assert installed.returncode == 1, installed.stderr
    findings = json.loads(installed.stdout)
    assert EXAMPLE_FINDINGS <= {(f["code"], f["line"]) for f in findings}
    # the same findings as the development checkout gives on the same file
    dev = run([sys.executable, "-m", "torchsanity.server", "check", "train.py", "--format", "json"], cwd=work)
    assert json.loads(dev.stdout) == findings

    rule = run([cli, "rule", "SAN101"], cwd=work)
    assert rule.returncode == 0 and "missing-zero-grad" in rule.stdout
    # the report's Chart.js is package data: the HTML renderer finds it in the installed package
    asset = run([str(python), "-c", "from importlib.resources import files; "
                  "print(files('torchsanity.server.assets').joinpath('chart.umd.min.js').is_file())"], cwd=work)
    assert asset.stdout.strip() == "True"
