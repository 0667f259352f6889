"""Fuzzing the engine: no input makes an exception escape `analyze_source` / `fix_source`, and no input
makes a rule raise (no problem of kind internal-error).

Inputs: arbitrary text (hypothesis), training scripts of the test corpus cut short, with lines deleted,
duplicated, swapped or re-indented, and random splices of their lines. Bounded to seconds.
"""

from __future__ import annotations

import random
from pathlib import Path

import libcst as cst
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchsanity.analyzers import analyze_source, fix_source

HERE = Path(__file__).parent
SOURCES = sorted((HERE.parent / "analyzers" / "corpus").glob("*.py")) + sorted((HERE / "buggy").glob("*.py"))
SOURCES += sorted((HERE.parent / "analyzers" / "projects").rglob("*.py"))
TEXTS = {p.relative_to(HERE.parent).as_posix(): p.read_text(encoding="utf-8") for p in SOURCES}
LINES = sorted({line for text in TEXTS.values() for line in text.splitlines() if line.strip()})

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def check(source: str) -> None:
    report = analyze_source(source, "fuzz.py")
    internal = [p for p in report.problems if p.kind == "internal-error"]
    assert not internal, f"{internal}\n--- source ---\n{source}"
    for finding in report.findings:
        assert 1 <= finding.start.line <= max(1, source.count("\n") + 1)
        assert (finding.start.line, finding.start.column) <= (finding.end.line, finding.end.column)


def check_fix(source: str) -> None:
    fixed, report = fix_source(source, "fuzz.py")
    assert not [p for p in report.problems if p.kind == "internal-error"], report.problems
    parsed_before = _parses(source)
    if parsed_before:
        assert _parses(fixed), f"a fix broke the file:\n{fixed}"
    else:
        assert fixed == source  # nothing is fixed in a file that does not parse


def _parses(source: str) -> bool:
    try:
        cst.parse_module(source)
        return True
    except Exception:
        return False


def test_there_is_something_to_fuzz():
    assert TEXTS, "no corpus found"


# ---- hypothesis ----------------------------------------------------------------------------------------


@FUZZ
@given(st.text(max_size=400))
def test_arbitrary_text(source):
    check(source)


@FUZZ
@given(st.text(alphabet=st.sampled_from(list("()[]{}:,.=+-*/ \n\t\\'\"#@abxy01_")), max_size=300))
def test_punctuation_soup(source):
    check(source)


@FUZZ
@given(st.lists(st.sampled_from(LINES or ["pass"]), min_size=1, max_size=40))
def test_spliced_corpus_lines(lines):
    check("\n".join(lines) + "\n")


@FUZZ
@given(st.sampled_from(sorted(TEXTS)) if TEXTS else st.just(""), st.data())
def test_corpus_with_random_lines_deleted(name, data):
    lines = TEXTS.get(name, "").splitlines(keepends=True)
    if not lines:
        return
    keep = data.draw(st.lists(st.booleans(), min_size=len(lines), max_size=len(lines)))
    source = "".join(line for line, kept in zip(lines, keep) if kept)
    check(source)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(TEXTS)) if TEXTS else st.just(""), st.integers(min_value=0, max_value=10**6))
def test_fix_on_truncated_corpus(name, cut):
    text = TEXTS.get(name, "")
    check_fix(text[: cut % (len(text) + 1)])


# ---- deterministic mutations of every corpus file --------------------------------------------------------


def mutations(text: str, seed: int) -> list[str]:
    rng = random.Random(seed)
    lines = text.splitlines(keepends=True)
    n = len(lines)
    out = []
    for fraction in (0.2, 0.5, 0.9):
        out.append(text[: int(len(text) * fraction)])  # cut mid-token
        out.append("".join(lines[: int(n * fraction)]))  # cut at a line
    for _ in range(2):
        if n > 2:
            i = rng.randrange(n)
            out.append("".join(lines[:i] + lines[i + 1:]))  # one line deleted
            j = rng.randrange(n)
            out.append("".join(lines[:j] + [lines[j], lines[j]] + lines[j + 1:]))  # duplicated
            k = rng.randrange(n - 1)
            out.append("".join(lines[:k] + [lines[k + 1], lines[k]] + lines[k + 2:]))  # swapped
            m = rng.randrange(n)
            out.append("".join(lines[:m] + ["    " + lines[m]] + lines[m + 1:]))  # indented
            out.append("".join(lines[:m] + [lines[m].lstrip()] + lines[m + 1:]))  # dedented
    out.append(text.replace("    ", "\t"))
    out.append(text.replace("\n", "\r\n"))
    out.append(text.replace(":\n", "\n", 1))
    return out


@pytest.mark.parametrize("name", sorted(TEXTS))
def test_corpus_mutations(name):
    text = TEXTS[name]
    for i, source in enumerate(mutations(text, seed=sum(map(ord, name)))):
        check(source)
