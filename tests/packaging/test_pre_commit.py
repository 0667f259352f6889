"""The pre-commit hook (.pre-commit-hooks.yaml) through `pre-commit try-repo`, as a user's repository runs it:
pre-commit clones the hook repository, installs it into its own environment (`pip install .`) and passes the
matching staged files to `torchsanity check`.

try-repo clones a git repository, so the test commits a snapshot of this working tree (tracked and untracked,
not ignored) into a temporary repository first: uncommitted work is what gets tested.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from packaging_helpers import ROOT, clean_env, run

# What `pip install .` of the hook repository needs
PACKAGE_PATHS = ("pyproject.toml", "README.md", "LICENSE", "MANIFEST.in", "CHANGELOG.md", ".pre-commit-hooks.yaml",
                 "analyzers", "server", "probes")
GIT_IDENTITY = {"GIT_AUTHOR_NAME": "test", "GIT_AUTHOR_EMAIL": "test@example.com",
                "GIT_COMMITTER_NAME": "test", "GIT_COMMITTER_EMAIL": "test@example.com"}
CLEAN = '''import torch


def train(model, loader, optimizer, loss_fn) -> None:
    torch.manual_seed(0)
    model.train()
    for inputs, targets in loader:
        optimizer.zero_grad()
        loss_fn(model(inputs), targets).backward()
        optimizer.step()
'''


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(["git", *args], cwd=cwd, env=clean_env() | GIT_IDENTITY, check=True, capture_output=True)


def _working_tree_files() -> list[str]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z", *PACKAGE_PATHS],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout
    return [name for name in listed.split("\0") if name and (ROOT / name).is_file()]


@pytest.fixture(scope="module")
def hook_repo(tmp_path_factory) -> Path:
    """A git repository holding a snapshot of this working tree's package and hook definition."""
    repo = tmp_path_factory.mktemp("hook-repo")
    for name in _working_tree_files():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    _git(repo, "init", "--quiet")
    _git(repo, "add", "--all")
    _git(repo, "commit", "--quiet", "--no-verify", "-m", "snapshot")
    return repo


def _try_repo(project: Path, hook_repo: Path) -> subprocess.CompletedProcess:
    """`pre-commit try-repo` on the staged files (it installs the hook into a fresh environment every time)."""
    env = clean_env() | GIT_IDENTITY | {"PRE_COMMIT_COLOR": "never"}
    return run([sys.executable, "-m", "pre_commit", "try-repo", str(hook_repo), "torchsanity-check", "--verbose",
                "--all-files"], cwd=project, env=env)


def _project(tmp_path: Path, files: dict[str, str]) -> Path:
    """A user's repository with these files staged."""
    project = tmp_path / "project"
    project.mkdir()
    _git(project, "init", "--quiet")
    for name, text in files.items():
        (project / name).parent.mkdir(parents=True, exist_ok=True)
        (project / name).write_text(text)
    _git(project, "add", "--all")
    return project


def test_hook_definition():
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    assert hook["id"] == "torchsanity-check" and hook["entry"] == "torchsanity check"
    assert hook["language"] == "python" and hook["files"] == r"\.(py|ipynb)$" and hook["require_serial"] is False


@pytest.mark.timeout(900)
def test_hook_fails_on_a_buggy_training_file(tmp_path, hook_repo):
    buggy = (ROOT / "examples" / "buggy_training.py").read_text(encoding="utf-8")
    # notes.txt does not parse: were it passed to the check, it would be reported
    project = _project(tmp_path, {"train.py": buggy, "models/clean.py": CLEAN, "notes.txt": "not python: (\n"})
    result = _try_repo(project, hook_repo)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "torchsanity check" in result.stdout and "Failed" in result.stdout
    assert "train.py:48:13: SAN101" in result.stdout  # the finding, with its position
    assert "clean.py:" not in result.stdout and "notes.txt" not in result.stdout


@pytest.mark.timeout(900)
def test_hook_passes_on_clean_code(tmp_path, hook_repo):
    project = _project(tmp_path, {"models/clean.py": CLEAN, "notes.txt": "not python: (\n"})
    result = _try_repo(project, hook_repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Passed" in result.stdout and "notes.txt" not in result.stdout
