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


# ---- the layers of analyzers/ (CONTRIBUTING.md, docs/architecture.md) ------------------------------

_ANALYZERS = ROOT / "analyzers"
# The bottom layer: pure libcst helpers, facts about the PyTorch API, guesses from names. They import
# nothing from the package (type hints apart), so every other module may use them.
_BASE = ("syntax.py", "torch_api.py", "name_guesses.py")
_MAX_LINES = 650  # "modules under ~600 lines, one job each"


def _runtime_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(absolute module, imported names) for the imports that run (not those under ``if TYPE_CHECKING``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = {id(node) for stmt in ast.walk(tree) if isinstance(stmt, ast.If)
               and isinstance(stmt.test, ast.Name) and stmt.test.id == "TYPE_CHECKING"
               for node in ast.walk(stmt)}
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped or not isinstance(node, ast.ImportFrom):
            continue
        module = _absolute(path, node.level, node.module) if node.level else (node.module or "")
        found.append((module, [alias.name for alias in node.names]))
    return found


def _analyzer_modules() -> list[Path]:
    return sorted(_ANALYZERS.glob("*.py")) + sorted((_ANALYZERS / "rules").glob("*.py"))


def test_the_base_layer_imports_nothing_from_the_package():
    for name in _BASE:
        imported = [module for module, _ in _runtime_imports(_ANALYZERS / name) if module.startswith("torchsanity")]
        assert imported == [], name


def test_only_the_engine_and_the_registry_know_the_rules():
    for path in sorted(_ANALYZERS.glob("*.py")):
        rules = [module for module, _ in _runtime_imports(path) if module.startswith("torchsanity.analyzers.rules")]
        assert rules == [] or path.name in ("engine.py", "registry.py"), path.name


def test_rule_family_helpers_stay_with_the_rules():
    """``rules/_*.py`` hold helpers of one family of rules: only rules import them."""
    for path in _analyzer_modules():
        if path.parent.name == "rules":
            continue
        private = [module for module, _ in _runtime_imports(path) if module.startswith("torchsanity.analyzers.rules._")]
        assert private == [], path.name


def test_no_module_imports_another_modules_private_names():
    for path in _analyzer_modules():
        private = [(module, name) for module, names in _runtime_imports(path) for name in names
                   if name.startswith("_") and module.startswith("torchsanity")]
        assert private == [], path.relative_to(ROOT)


def test_analyzer_modules_stay_small():
    sizes = {str(path.relative_to(ROOT)): len(path.read_text(encoding="utf-8").splitlines()) for path in _analyzer_modules()}
    assert {name: n for name, n in sizes.items() if n > _MAX_LINES} == {}
