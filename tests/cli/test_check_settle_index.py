"""The index `check`'s parent settles callers' questions with (over the tree on disk, no libcst) finds the
same module files as a :class:`Project`, which the workers and the language server resolve imports with."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_helpers import write

from torchsanity.analyzers import Project
from torchsanity.analyzers.project_index import OnDisk

FILES = ("main.py", "engine.py", "app/__init__.py", "app/train.py", "app/eval/__init__.py", "app/eval/loop.py",
         "app/eval/metrics.py", "app/utils.py", "lib/helpers.py")
IMPORTS = [  # (importer, module as the import names it)
    ("main.py", "engine"), ("main.py", "app"), ("main.py", "app.train"), ("main.py", "app.eval.loop"),
    ("main.py", "app.missing"), ("app/train.py", "engine"), ("app/train.py", "utils"), ("app/train.py", ".utils"),
    ("app/train.py", ".eval"), ("app/train.py", ".eval.metrics"), ("app/eval/loop.py", ".metrics"),
    ("app/eval/loop.py", ".."), ("app/eval/loop.py", "..utils"), ("app/eval/loop.py", "..train"),
    ("app/eval/loop.py", "...engine"), ("app/eval/loop.py", "app.utils"), ("lib/helpers.py", "helpers"),
    ("lib/helpers.py", "lib.helpers"), ("lib/helpers.py", ".absent"),
]


@pytest.mark.parametrize("importer, module", IMPORTS)
def test_the_disk_index_finds_the_module_a_project_finds(tmp_path, importer, module):
    for name in FILES:
        write(tmp_path / name, "x = 1\n")
    found = Project(tmp_path).module_file(module, str(tmp_path / importer))
    assert OnDisk(tmp_path).module_file(module, str(tmp_path / importer)) == found


def test_a_missing_module_is_none_and_a_found_one_is_the_file(tmp_path):
    for name in FILES:
        write(tmp_path / name, "x = 1\n")
    tree = OnDisk(tmp_path)
    assert tree.module_file(".eval.metrics", str(tmp_path / "app" / "train.py")) == Path(
        tmp_path.resolve(), "app", "eval", "metrics.py")
    assert tree.module_file("app.missing", str(tmp_path / "main.py")) is None
