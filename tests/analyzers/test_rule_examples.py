"""The one generic test every rule's own examples go through (Fixit style)."""

from __future__ import annotations

import inspect

import libcst as cst
import pytest
from torchsanity.analyzers import all_rules, analyze_source, apply_fixes, fix_source
from torchsanity.analyzers.rule import Invalid, Valid

RULES = all_rules()


def _cases(kind: str):
    for rule in RULES:
        for i, example in enumerate(getattr(rule, kind)):
            yield pytest.param(rule, example, id=f"{rule.code}-{kind.lower()}-{i}")


def test_catalog_is_complete():
    codes = {rule.code for rule in RULES}
    expected = {
        "SAN101", "SAN102", "SAN104", "SAN105", "SAN106", "SAN107", "SAN201", "SAN202", "SAN203", "SAN204",
        "SAN301", "SAN302", "SAN401", "SAN402", "SAN501", "SAN502", "SAN503", "SAN504", "SAN601", "SAN602", "SAN603", "SAN701",
        "SAN702", "SAN703", "SAN801", "SAN802", "SAN901",
    }
    assert expected <= codes, f"rules missing: {sorted(expected - codes)}"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_is_documented(rule):
    assert rule.code.startswith("SAN") and len(rule.code) == 6
    assert rule.name and rule.name == rule.name.lower() and " " not in rule.name
    assert rule.what(), "the docstring says what the rule finds"
    for attr in ("message", "why", "example", "fix_doc"):
        assert inspect.cleandoc(getattr(rule, attr)).strip(), f"{rule.code}.{attr} is empty"
    assert rule.VALID and rule.INVALID, "every rule carries valid and invalid examples"
    assert all(isinstance(example, Valid) for example in rule.VALID)
    assert all(isinstance(example, Invalid) for example in rule.INVALID)
    page = rule.docs_markdown()
    for heading in ("## What it finds", "## Why it matters", "## Example", "## Fix"):
        assert heading in page


@pytest.mark.parametrize("rule, example", list(_cases("VALID")))
def test_valid_example_is_quiet(rule, example):
    report = analyze_source(example.code, rules=[rule])
    assert not report.problems, report.problems
    assert [f for f in report.findings if f.code == rule.code] == [], example.code


def test_examples_are_dedented_as_written():
    example = Valid("""
        for x, y in loader:
            loss = model(x).sum()
    """)
    assert example.code == "for x, y in loader:\n    loss = model(x).sum()\n"
    assert Valid("x = 1  # noqa\n").code == "x = 1  # noqa\n"  # one line: taken as is
    invalid = Invalid("""
        a = 1
    """, line=1, fixed="""
        b = 1
    """)
    assert (invalid.code, invalid.fixed) == ("a = 1\n", "b = 1\n")


@pytest.mark.parametrize("rule, example", list(_cases("INVALID")))
def test_invalid_example_is_found_and_fixed(rule, example):
    report = analyze_source(example.code, rules=[rule])
    assert not report.problems, report.problems
    found = [f for f in report.findings if f.code == rule.code]
    assert found, f"{rule.code} did not fire on:\n{example.code}"
    if example.line is not None:
        assert example.line in {f.start.line for f in found}, [f.start for f in found]
    if example.column is not None:
        assert any(f.start.column == example.column for f in found if example.line in (None, f.start.line)), \
            [f.start for f in found]
    if example.message is not None:
        assert example.message in {f.message for f in found}, [f.message for f in found]
    if example.fixed is not None:
        assert any(f.fix is not None for f in found), f"{rule.code} offers no fix"
        fixed, after = fix_source(example.code, rules=[rule], unsafe=True)
        assert fixed == example.fixed
        cst.parse_module(fixed)  # the fix parses
        assert [f for f in after.findings if f.code == rule.code] == []  # and the finding is gone
        assert apply_fixes(fixed, after.findings) == fixed or fix_source(fixed, rules=[rule], unsafe=True)[0] == fixed
