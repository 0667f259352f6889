"""Which files `torchsanity check PATH…` looks at.

Follows ruff: directories are walked for ``*.py`` files, skipping the usual tool / environment
folders (``.git``, ``.venv``, ``node_modules``, …) and the project's ``exclude`` globs; a file named
explicitly on the command line is checked even when excluded (unless ``--force-exclude``) and
whatever its extension.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from ..analyzers import Config

# ruff's default `exclude`, plus caches.
DEFAULT_EXCLUDED_DIRS = frozenset(
    {
        ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints", ".mypy_cache",
        ".nox", ".pants.d", ".pyenv", ".pytest_cache", ".pytype", ".ruff_cache", ".svn", ".tox", ".venv",
        ".vscode", ".hypothesis", "__pypackages__", "__pycache__", "_build", "buck-out", "build", "dist",
        "node_modules", "site-packages", "venv",
    }
)
PYTHON_SUFFIXES = (".py",)


@dataclass(frozen=True)
class Target:
    """One file to check, with the configuration and project root that apply to it."""

    path: str  # the path as it is shown to the user
    config: Config
    project_root: str | None


@dataclass
class Discovery:
    targets: list[Target]
    missing: list[str]  # paths on the command line that do not exist


def display_path(path: Path, cwd: Path) -> str:
    """The path relative to the working directory when it lies under it, else absolute."""
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(cwd).as_posix()
    except ValueError:
        return str(absolute)


def _walk(directory: Path, config: Config) -> Iterable[Path]:
    """The Python files under ``directory``. As in ruff, the directory named on the command line is
    never excluded itself: an ``exclude`` glob removes what it newly matches below it (``tests/``
    skips ``./tests`` when ``.`` is checked, but ``torchsanity check tests/corpus`` checks the corpus)."""

    def newly_excluded(path: Path, parent_excluded: bool) -> bool:
        return bool(config.exclude) and not parent_excluded and config.is_excluded(path)

    excluded_state: dict[str, bool] = {str(directory): bool(config.exclude) and config.is_excluded(directory)}
    for root, dirs, files in os.walk(directory):
        root_path = Path(root)
        parent_excluded = excluded_state.get(root, False)
        kept = []
        for name in sorted(dirs):
            if name in DEFAULT_EXCLUDED_DIRS:
                continue
            child = root_path / name
            if newly_excluded(child, parent_excluded):
                continue
            excluded_state[str(child)] = parent_excluded or (bool(config.exclude) and config.is_excluded(child))
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if not name.endswith(PYTHON_SUFFIXES):
                continue
            path = root_path / name
            if newly_excluded(path, parent_excluded):
                continue
            if not path.is_file():  # a dangling symlink, a fifo named *.py
                continue
            yield path


def discover(
    paths: Sequence[str],
    config_for,
    force_exclude: bool = False,
    cwd: Path | None = None,
) -> Discovery:
    """The files to check. ``config_for(path)`` returns the :class:`Config` of a command-line path
    (it may raise :class:`ConfigError`)."""
    cwd = Path(os.path.abspath(cwd or os.getcwd()))
    targets: list[Target] = []
    missing: list[str] = []
    seen: set[str] = set()

    def add(path: Path, config: Config, project_root: Path | None) -> None:
        key = os.path.realpath(path)
        if key in seen:
            return
        seen.add(key)
        targets.append(Target(display_path(path, cwd), config, str(project_root) if project_root else None))

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            missing.append(raw)
            continue
        config = config_for(path)
        if path.is_dir():
            root = Path(os.path.abspath(path))
            if force_exclude and config.exclude and config.is_excluded(root):
                continue
            for file in _walk(path, config):
                add(file, config, root)
        else:
            if force_exclude and config.exclude and config.is_excluded(path):
                continue
            add(path, config, Path(os.path.abspath(path)).parent)
    return Discovery(targets, missing)
