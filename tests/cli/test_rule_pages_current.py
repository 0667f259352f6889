"""The committed rule pages under docs/rules (the target of every diagnostic's codeDescription link) are
exactly what `torchsanity rule --all --output-dir` writes from the rule classes today."""

from pathlib import Path

from torchsanity.analyzers import all_rules
from torchsanity.server.rule_command import write_pages

DOCS = Path(__file__).resolve().parents[2] / "docs" / "rules"


def test_rule_pages_are_current(tmp_path):
    written = write_pages(all_rules(), tmp_path)
    assert {p.name for p in written} == {p.name for p in DOCS.glob("*.md")}
    for page in written:
        assert (DOCS / page.name).read_text(encoding="utf-8") == page.read_text(encoding="utf-8"), (
            f"docs/rules/{page.name} is stale: run `torchsanity rule --all --output-dir docs/rules`")
