"""The house rules of DESIGN.md §1: one distribution, nothing generic at the top of site-packages,
and imports that flow one way (analyzers never import pygls; probes only the stdlib, torch, numpy)."""

from __future__ import annotations

import ast
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


_PACKAGE_OF_FOLDER = {"analyzers": "torchsanity.analyzers", "server": "torchsanity.server", "probes": "torchsanity.probes"}


def _absolute(path: Path, level: int, module: str | None) -> str:
    """The absolute name a relative import in ``path`` resolves to (the folders map to torchsanity.*)."""
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    package = _PACKAGE_OF_FOLDER[parts[0]].split(".") + parts[1:-1]
    base = package[: len(package) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _imported_roots(folder: Path) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in folder.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom):
                names = [_absolute(path, node.level, node.module)]
            else:
                continue
            for name in names:
                found.setdefault(name, set()).add(str(path.relative_to(ROOT)))
    return found


def test_analyzers_do_not_import_editor_or_probe_code():
    imports = _imported_roots(ROOT / "analyzers")
    bad = {name: files for name, files in imports.items()
           if name.split(".")[0] in ("pygls", "lsprotocol", "torch") or name.startswith(("torchsanity.server", "torchsanity.probes"))}
    assert bad == {}


def test_probes_import_only_stdlib_torch_numpy():
    imports = _imported_roots(ROOT / "probes")
    allowed_third_party = {"torch", "numpy"}
    bad = {}
    for name, files in imports.items():
        root = name.split(".")[0]
        if root in sys.stdlib_module_names or root in allowed_third_party:
            continue
        if name.startswith("torchsanity.probes"):
            continue
        bad[name] = files
    assert bad == {}


@pytest.mark.timeout(300)
def test_wheel_installs_only_torchsanity(tmp_path):
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    (wheel,) = tmp_path.glob("torchsanity-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {"torchsanity", next(t for t in tops if t.endswith(".dist-info"))}
    for expected in (
        "torchsanity/analyzers/engine.py",
        "torchsanity/analyzers/rules/san504_adam_l2_weight_decay.py",
        "torchsanity/server/cli.py",
        "torchsanity/probes/__init__.py",
        "torchsanity/probes/checks/lr_range.py",
    ):
        assert expected in names
    assert not any(name.startswith("torchsanity/__init__") for name in names)  # a namespace package
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "torchsanity = torchsanity.server.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_console_script_runs():
    result = subprocess.run([sys.executable, "-m", "torchsanity.server", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("torchsanity ")
