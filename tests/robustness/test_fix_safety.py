"""Fix safety over the corpus (tests/analyzers/corpus, the project folders, and tests/robustness/buggy):

- each fix on its own: the result compiles, and that finding is gone;
- `torchsanity check --fix` on a copy: every file still compiles, no fixable finding is left, a second
  `--fix` changes nothing, `--diff` shows nothing, and line endings are kept.
"""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import libcst as cst
import pytest

from torchsanity.analyzers import Config, analyze_source, apply_fixes, fix_source

HERE = Path(__file__).parent
CORPUS_DIRS = [HERE.parent / "analyzers" / "corpus", HERE / "buggy"]
FILES = sorted(p for d in CORPUS_DIRS if d.is_dir() for p in d.glob("*.py"))
PROJECTS = sorted(p for p in (HERE.parent / "analyzers" / "projects").glob("*") if p.is_dir())
CONFIG = Config()


def read(path: Path) -> str:
    with open(path, encoding="utf-8", newline="") as handle:
        return handle.read()


def compiles(source: str, name: str) -> None:
    cst.parse_module(source)
    compile(source, name, "exec", dont_inherit=True)


def fixable_cases():
    for path in FILES:
        source = read(path)
        report = analyze_source(source, str(path), CONFIG)
        for finding in report.findings:
            if finding.fix is not None:
                yield pytest.param(path, finding, id=f"{path.name}:{finding.start.line}:{finding.code}")


CASES = list(fixable_cases())


def test_the_corpus_exercises_fixes():
    assert CASES, "no fixable finding in the corpus"


@pytest.mark.parametrize("path, finding", CASES)
def test_each_fix_alone_compiles_and_removes_its_finding(path, finding):
    source = read(path)
    fixed = apply_fixes(source, [finding])
    assert fixed != source, "the fix changes nothing"
    compiles(fixed, path.name)
    before = Counter(f.code for f in analyze_source(source, str(path), CONFIG).findings)
    after_report = analyze_source(fixed, str(path), CONFIG)
    assert not after_report.problems, after_report.problems
    after = Counter(f.code for f in after_report.findings)
    assert after[finding.code] < before[finding.code], f"{finding.code} still reported after its fix:\n{fixed}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_fix_source_reaches_a_fixed_point(path):
    source = read(path)
    for unsafe in (False, True):
        fixed, report = fix_source(source, str(path), CONFIG, unsafe=unsafe)
        compiles(fixed, path.name)
        left = [f for f in report.findings if f.fix is not None and (unsafe or f.fix.is_safe)]
        assert left == [], "applicable fixes left after fix_source"
        again, _ = fix_source(fixed, str(path), CONFIG, unsafe=unsafe)
        assert again == fixed


def _copy_corpus(tmp_path: Path) -> Path:
    target = tmp_path / "work"
    target.mkdir()
    for directory in CORPUS_DIRS:
        if directory.is_dir():
            for path in directory.glob("*.py"):
                shutil.copyfile(path, target / f"{directory.name}_{path.name}")
    for project in PROJECTS:
        shutil.copytree(project, target / project.name)
    return target


def _snapshot(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*.py"))}


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_cli_fix_is_safe_and_idempotent(run_cli, tmp_path, jobs):
    work = _copy_corpus(tmp_path)
    original = _snapshot(work)
    first = run_cli("check", "--no-config", "--fix", "--unsafe-fixes", "-j", jobs, ".", cwd=work)
    assert first.code in (0, 1), first.out + first.err
    assert "Traceback" not in first.out + first.err
    fixed = _snapshot(work)
    assert fixed != original, "nothing was fixed"
    for name, data in fixed.items():
        text = data.decode("utf-8")
        compiles(text, name)
        if b"\r\n" in original[name]:
            assert b"\n" not in data.replace(b"\r\n", b""), f"{name}: --fix mixed LF into a CRLF file"
        if not original[name].endswith(b"\n"):
            assert not data.endswith(b"\n") or data.endswith(b"\r\n") is original[name].endswith(b"\r\n")
    # No fixable finding is left, and a second --fix changes nothing.
    import json

    remaining = json.loads(run_cli("check", "--no-config", "--format", "json", ".", cwd=work).out)
    assert [d for d in remaining if "fix" in d] == []
    assert all(d["code"] is not None for d in remaining), [d for d in remaining if d["code"] is None]
    second = run_cli("check", "--no-config", "--fix", "--unsafe-fixes", "-j", jobs, ".", cwd=work)
    assert second.code == first.code
    assert _snapshot(work) == fixed, "a second --fix changed files"
    diff = run_cli("check", "--no-config", "--diff", "--unsafe-fixes", ".", cwd=work)
    assert diff.code == 0 and diff.out == ""


def test_cli_diff_matches_fix(run_cli, tmp_path):
    """`--diff` shows exactly the files `--fix` changes, and writes nothing."""
    work = _copy_corpus(tmp_path)
    original = _snapshot(work)
    diff = run_cli("check", "--no-config", "--diff", ".", cwd=work)  # safe fixes only, as --fix
    assert diff.code == 1
    assert _snapshot(work) == original
    shown = {line[len("--- a/"):] for line in diff.out.splitlines() if line.startswith("--- a/")}
    run_cli("check", "--no-config", "--fix", ".", cwd=work)
    changed = {name for name, data in _snapshot(work).items() if data != original[name]}
    assert shown == changed


def test_engine_fixes_keep_crlf():
    source = "import torch\r\nimport random\r\ntorch.manual_seed(0)\r\nrandom.shuffle(items)\r\n"
    fixed, _ = fix_source(source, "crlf.py", CONFIG, unsafe=True)
    assert fixed != source, "no fix to exercise (SAN402 seeds random)"
    assert "\n" not in fixed.replace("\r\n", "")
