"""Realistic training scripts, checked with every rule at once.

Each file under ``corpus/`` marks the lines where findings are expected with a trailing comment
``# expect: SAN101`` (several codes separated by commas). The findings of *all* rules must equal the
expectations exactly: an unannotated finding is a false positive, a missing one a miss.
Each folder under ``projects/`` is checked as a directory (cross-file resolution) the same way.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from torchsanity.analyzers import Config, Project, analyze_file

HERE = Path(__file__).parent
CORPUS = sorted((HERE / "corpus").glob("*.py"))
PROJECTS = sorted(p for p in (HERE / "projects").iterdir() if p.is_dir()) if (HERE / "projects").is_dir() else []
_EXPECT = re.compile(r"#\s*expect:\s*(?P<codes>SAN\d{3}(?:\s*,\s*SAN\d{3})*)")


def expected_findings(path: Path) -> set[tuple[str, int, str]]:
    expected = set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        match = _EXPECT.search(line)
        if match:
            for code in re.split(r"\s*,\s*", match.group("codes")):
                expected.add((path.name, number, code))
    return expected


def actual_findings(path: Path, project: Project | None = None) -> set[tuple[str, int, str]]:
    report = analyze_file(path, Config(), project)
    assert not report.problems, report.problems
    return {(path.name, f.start.line, f.code) for f in report.findings}


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: p.name)
def test_corpus_file(path):
    expected = expected_findings(path)
    actual = actual_findings(path)
    assert sorted(actual - expected) == [], "false positives"
    assert sorted(expected - actual) == [], "missed findings"


@pytest.mark.parametrize("folder", PROJECTS, ids=lambda p: p.name)
def test_project_folder(folder):
    project = Project(folder)
    expected, actual = set(), set()
    for path in sorted(folder.rglob("*.py")):
        expected |= expected_findings(path)
        actual |= actual_findings(path, project)
    assert sorted(actual - expected) == [], "false positives"
    assert sorted(expected - actual) == [], "missed findings"
