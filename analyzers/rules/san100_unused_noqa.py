from __future__ import annotations

from ..context import RuleContext
from ..rule import Invalid, Rule, Valid


class UnusedNoqa(Rule):
    """A `# noqa: SANxxx` directive that suppresses nothing: the rule it names no longer reports on that
    line (the code was fixed or moved), or the code names no torchsanity rule. Codes of other tools
    (`# noqa: E501`) and bare `# noqa` are left alone, and a code is only judged when its rule ran (a
    `--select` that leaves a rule out does not make its directives look unused)."""

    code = "SAN100"
    name = "unused-noqa"
    message = "unused noqa directive"
    why = """
        A stale `# noqa` hides the next real bug on that line: when the finding it was written for is
        gone, the directive silently suppresses whatever the rule finds there later. A misspelt code
        (`# noqa: SAN5O4`) never suppressed anything at all.
    """
    example = """
        opt = torch.optim.AdamW(model.parameters(), weight_decay=1e-2)  # noqa: SAN504
    """
    fix_doc = """
        Remove the unused code from the directive, or the whole directive when no code is left. The fix
        is safe: a directive that suppresses nothing has no effect.
    """
    known_problems = """
        A code is judged only when its rule ran on the file; directives for rules left out by `--select`
        or the configuration are never reported, even when they are stale.
    """
    fix_safety = """
        Safe: removing a directive that suppresses nothing changes no finding and no behaviour of the code.
    """
    VALID = [
        Valid("""
            x = 1  # noqa
        """),
        Valid("""
            import os  # noqa: F401
        """),
        Valid("""
            y = 2  # a comment that mentions noqa in passing
        """),
        Valid("""
            s = '# noqa: SAN999'
        """),
    ]
    INVALID = [
        Invalid("""
            x = 1  # noqa: SAN999
        """, line=1, fixed="""
            x = 1
        """),
        Invalid("""
            import os  # noqa: F401, SAN999
        """, line=1, fixed="""
            import os  # noqa: F401
        """),
    ]

    def check(self, ctx: RuleContext):
        """Nothing here: the engine reports SAN100 after every other rule, from the findings their
        directives suppressed (:func:`..suppression.unused_noqa_findings`)."""
        return ()
