"""Every rule's page says what the rule cannot see (Known problems) and how safe its fix is (Fix safety),
and the page agrees with the fixes the rule actually builds."""

from __future__ import annotations

import pytest

from torchsanity.analyzers import all_rules, analyze_source
from torchsanity.analyzers.findings import Applicability

RULES = list(all_rules())


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_page_has_known_problems_and_fix_safety(rule):
    page = rule.docs_markdown()
    assert "\n## Known problems\n\n" in page and "\n## Fix safety\n\n" in page
    assert page.index("## Why it matters") < page.index("## Known problems") < page.index("## Example")
    assert page.index("## Fix\n") < page.index("## Fix safety")


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r.code)
def test_fix_safety_matches_the_fixes_the_rule_builds(rule):
    safety = rule.fix_safety.lower()
    kinds = set()
    for example in rule.INVALID:
        for finding in analyze_source(example.code, "example.py", rules=[rule]).findings:
            if finding.code == rule.code and finding.fix is not None:
                kinds.add(finding.fix.applicability)
    if not kinds:
        return  # examples without a fix (the page may still describe one the examples do not reach)
    for kind in kinds:
        word = "unsafe" if kind is Applicability.UNSAFE else "safe"
        assert f"{word}:" in safety or f"is {word}" in safety or f"{word}" in safety.split(), (
            f"{rule.code}: its fixes are {word}, the page says: {rule.fix_safety}")
    if kinds == {Applicability.SAFE}:
        assert "unsafe" not in safety, f"{rule.code}: every fix is safe, the page says unsafe"
