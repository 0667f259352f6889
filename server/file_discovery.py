"""Which files `torchsanity check PATH…` looks at.

Follows ruff: directories are walked for ``*.py`` and ``*.ipynb`` files, skipping the usual tool /
environment folders (``.git``, ``.venv``, ``node_modules``, …), any folder holding a ``pyvenv.cfg`` (a
virtual environment, whatever its name), what ``.gitignore`` / ``.ignore`` files ignore (nested ones and
negations included; ``--no-respect-gitignore`` turns this off) and the project's ``exclude`` /
``extend-exclude`` globs. A file named explicitly on the command line is checked even when excluded
(unless ``--force-exclude``) and whatever its extension.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import pathspec

from ..analyzers import Config

# ruff's default `exclude`, plus caches.
DEFAULT_EXCLUDED_DIRS = frozenset(
    {
        ".bzr", ".direnv", ".eggs", ".git", ".git-rewrite", ".hg", ".ipynb_checkpoints", ".mypy_cache",
        ".nox", ".pants.d", ".pyenv", ".pytest_cache", ".pytype", ".ruff_cache", ".svn", ".tox", ".venv",
        ".vscode", ".hypothesis", ".torchsanity_cache", "__pypackages__", "__pycache__", "_build", "buck-out",
        "build", "dist", "node_modules", "site-packages", "venv",
    }
)
CHECKED_SUFFIXES = (".py", ".ipynb")
IGNORE_FILES = (".gitignore", ".ignore")


@dataclass(frozen=True)
class Target:
    """One file to check, with the configuration and project root that apply to it."""

    path: str  # the path as it is shown to the user
    config: Config
    project_root: str | None
    stdin_text: str | None = field(default=None, compare=False)  # `check -`: the text read from stdin


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


# ---- .gitignore / .ignore ----------------------------------------------------------------------------


class IgnoreRules:
    """The ignore files that apply inside a tree: each directory's own, the deeper one deciding."""

    def __init__(self) -> None:
        self._specs: dict[Path, pathspec.GitIgnoreSpec | None] = {}

    def _spec(self, directory: Path) -> pathspec.GitIgnoreSpec | None:
        if directory not in self._specs:
            lines: list[str] = []
            for name in IGNORE_FILES:
                try:
                    lines += (directory / name).read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    continue
            self._specs[directory] = pathspec.GitIgnoreSpec.from_lines(lines) if lines else None
        return self._specs[directory]

    def ignored(self, path: Path, is_dir: bool, top: Path) -> bool:
        """Whether ``path`` (under ``top``, absolute) is ignored by the ignore files of ``top`` (and the
        repository above it) down to its own directory."""
        for directory in self._directories(path.parent, top):
            spec = self._spec(directory)
            if spec is None:
                continue
            rel = path.relative_to(directory).as_posix() + ("/" if is_dir else "")
            include = spec.check_file(rel).include
            if include is not None:
                return include
        return False

    @staticmethod
    def _directories(start: Path, top: Path) -> Iterable[Path]:
        """``start`` up to ``top``, then up to the repository root (the folder holding ``.git``) when
        ``top`` lies in one: deepest first."""
        current = start
        while True:
            yield current
            if current == top:
                break
            if current.parent == current:
                return
            current = current.parent
        above = [p for p in top.parents]
        repo = next((i for i, p in enumerate([top, *above]) if (p / ".git").exists()), None)
        if repo:
            yield from above[:repo]


# ---- walking -----------------------------------------------------------------------------------------


def _is_virtualenv(directory: Path) -> bool:
    return (directory / "pyvenv.cfg").is_file()


def _walk(directory: Path, config: Config, ignore: IgnoreRules | None) -> Iterable[Path]:
    """The Python files and notebooks under ``directory``. As in ruff, the directory named on the command
    line is never excluded itself: an ``exclude`` glob removes what it newly matches below it (``tests/``
    skips ``./tests`` when ``.`` is checked, but ``torchsanity check tests/corpus`` checks the corpus)."""
    top = Path(os.path.abspath(directory))

    def newly_excluded(path: Path, parent_excluded: bool) -> bool:
        return bool(config.exclude) and not parent_excluded and config.is_excluded(path)

    excluded_state: dict[str, bool] = {str(directory): bool(config.exclude) and config.is_excluded(directory)}
    for root, dirs, files in os.walk(directory):
        root_path = Path(root)
        absolute_root = Path(os.path.abspath(root_path))
        parent_excluded = excluded_state.get(root, False)
        kept = []
        for name in sorted(dirs):
            if name in DEFAULT_EXCLUDED_DIRS:
                continue
            child = root_path / name
            if newly_excluded(child, parent_excluded) or _is_virtualenv(child):
                continue
            if ignore is not None and ignore.ignored(absolute_root / name, True, top):
                continue
            excluded_state[str(child)] = parent_excluded or (bool(config.exclude) and config.is_excluded(child))
            kept.append(name)
        dirs[:] = kept
        for name in sorted(files):
            if not name.endswith(CHECKED_SUFFIXES):
                continue
            path = root_path / name
            if newly_excluded(path, parent_excluded):
                continue
            if ignore is not None and ignore.ignored(absolute_root / name, False, top):
                continue
            if not path.is_file():  # a dangling symlink, a fifo named *.py
                continue
            yield path


def discover(
    paths: Sequence[str],
    config_for,
    force_exclude: bool = False,
    cwd: Path | None = None,
    respect_gitignore: bool = True,
) -> Discovery:
    """The files to check. ``config_for(path)`` returns the :class:`Config` of a command-line path
    (it may raise :class:`ConfigError`)."""
    cwd = Path(os.path.abspath(cwd or os.getcwd()))
    targets: list[Target] = []
    missing: list[str] = []
    seen: set[str] = set()
    ignore = IgnoreRules() if respect_gitignore else None

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
            for file in _walk(path, config, ignore):
                add(file, config, root)
        else:
            if force_exclude and config.exclude and config.is_excluded(path):
                continue
            if force_exclude and ignore is not None:
                absolute = Path(os.path.abspath(path))
                if ignore.ignored(absolute, False, absolute.parent):
                    continue
            add(path, config, Path(os.path.abspath(path)).parent)
    return Discovery(targets, missing)
