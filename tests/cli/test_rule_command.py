"""`torchsanity rule`: one rule's docs, the list, every page, and unknown codes."""

from __future__ import annotations

import json

import pytest

from torchsanity.analyzers import all_rules

RULES = all_rules()


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_rule_prints_its_docs(cli, rule):
    result = cli("rule", rule.code)
    assert result.code == 0
    assert result.out == rule.docs_markdown()
    assert result.out.startswith(f"# {rule.code} {rule.name}")
    for heading in ("## What it finds", "## Why it matters", "## Example", "## Fix"):
        assert heading in result.out


def test_rule_by_name_and_lower_case(cli):
    page = cli("rule", "SAN504").out
    assert cli("rule", "san504").out == page
    assert cli("rule", "adam-l2-weight-decay").out == page


@pytest.mark.parametrize("code", ["SAN999", "E501", "nonsense", "SAN"])
def test_unknown_rule_is_a_clear_error(cli, code):
    result = cli("rule", code)
    assert result.code == 2
    assert result.out == ""
    assert "unknown rule" in result.err and "torchsanity rule" in result.err
    assert "Traceback" not in result.err


def test_unknown_rule_suggests_a_near_code(cli):
    assert "SAN504" in cli("rule", "SAN540").err


def test_rule_without_code_lists_every_rule(cli):
    result = cli("rule")
    assert result.code == 0
    listed = [line.split()[0] for line in result.out.splitlines() if line.startswith("SAN")]
    assert listed == [r.code for r in RULES]
    assert "adam-l2-weight-decay" in result.out


def test_rule_json(cli):
    one = json.loads(cli("rule", "SAN504", "--format", "json").out)
    assert one["code"] == "SAN504" and one["fix"] is True and one["docs"].startswith("# SAN504")
    listing = json.loads(cli("rule", "--format", "json").out)
    assert [r["code"] for r in listing] == [r.code for r in RULES]
    everything = json.loads(cli("rule", "--all", "--format", "json").out)
    assert all(r["docs"] for r in everything)


def test_rule_all(cli):
    result = cli("rule", "--all")
    assert result.code == 0
    for rule in RULES:
        assert f"# {rule.code} {rule.name}" in result.out


def test_rule_all_writes_pages(cli, tmp_path):
    result = cli("rule", "--all", "--output-dir", "docs/rules")
    assert result.code == 0
    pages = tmp_path / "docs" / "rules"
    for rule in RULES:
        assert (pages / f"{rule.code}.md").read_text(encoding="utf-8") == rule.docs_markdown()
    index = (pages / "README.md").read_text(encoding="utf-8")
    assert all(f"[{rule.code}]({rule.code}.md)" in index for rule in RULES)


def test_rule_argument_errors(cli):
    assert cli("rule", "--output-dir", "x").code == 2
    assert cli("rule", "SAN504", "--all").code == 2
