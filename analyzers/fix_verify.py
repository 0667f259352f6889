"""Verifying fixes before anyone sees them: the one check the CLI and the language server share.

A fix is kept only when, applied to the original text,

- it changes something (never "replace `y_hat` with `y_hat`");
- the result parses, for CPython and for libcst;
- its finding is gone (no finding of that rule where it was, and fewer findings of that rule);
- a second pass is a no-op: the rule offers no new fix that touches what this fix wrote.

Anything else is dropped, and the finding says "no safe fix". Fixes are first checked all at once
(one re-analysis for the file); only when that batch fails is each fix checked on its own.
"""

from __future__ import annotations

import ast
import warnings
from bisect import bisect_right
from collections import Counter
from dataclasses import replace
from typing import Callable, Iterable, Sequence

from .findings import FileReport, Finding, Fix, Position
from .fixes import apply_edits, line_starts, offset_of

NO_SAFE_FIX = "no safe fix"

# (source text, rule codes) -> its report by those of the rules the original analysis ran, unverified.
Reanalyze = Callable[[str, frozenset], FileReport]


def _parses(text: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(text, "<fix>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


class _Applied:
    """Fixes applied together to ``source``: the new text, and where old offsets and edits land in it."""

    def __init__(self, source: str, fixes: Sequence[Fix]) -> None:
        starts = line_starts(source)
        self.spans = sorted(
            (offset_of(starts, e.start), offset_of(starts, e.end), e.new_text) for fix in fixes for e in fix.edits
        )
        self.source_starts = starts
        self.text = apply_edits(source, (e for fix in fixes for e in fix.edits))
        self.text_starts = line_starts(self.text)

    def moved(self, offset: int) -> int:
        """Where ``offset`` of the original text lies in the new text (inserted text pushes it on)."""
        delta = 0
        for begin, end, new_text in self.spans:
            if begin > offset or (begin == offset and end > offset):
                break
            if end > offset:  # inside replaced text: its start
                return begin + delta
            delta += len(new_text) - (end - begin)
        return offset + delta

    def written(self, fix: Fix) -> list[tuple[int, int]]:
        """The spans of the new text that ``fix`` wrote."""
        out = []
        for edit in fix.edits:
            begin = self.moved(offset_of(self.source_starts, edit.start))
            out.append((begin, begin + len(edit.new_text)))
        return out

    def position(self, offset: int) -> Position:
        line = bisect_right(self.text_starts, offset)
        return Position(line, offset - self.text_starts[line - 1])

    def offset(self, position: Position) -> int:
        return offset_of(self.text_starts, position)


def _changes_something(source: str, fix: Fix) -> bool:
    return apply_edits(source, fix.edits) != source


def _batch_holds(source: str, findings: Sequence[Finding], after: FileReport, applied: _Applied) -> bool:
    """Whether every fix of ``findings`` (applied together into ``applied``) passes, judged on ``after``."""
    if any(p.kind == "syntax-error" for p in after.problems):
        return False
    for finding in findings:
        start = applied.position(applied.moved(offset_of(applied.source_starts, finding.start)))
        if any(f.code == finding.code and f.start == start for f in after.findings):
            return False  # the finding is still there
        written = applied.written(finding.fix)
        for again in after.findings:
            if again.code != finding.code or again.fix is None:
                continue
            for edit in again.fix.edits:
                b, e = applied.offset(edit.start), applied.offset(edit.end)
                if any(b <= we and wb <= e for wb, we in written):
                    return False  # a second pass would edit what this fix wrote: it does not converge
    return True


def _fewer(before: Sequence[Finding], after: FileReport, codes: Iterable[str]) -> bool:
    was = Counter(f.code for f in before)
    now = Counter(f.code for f in after.findings)
    return all(now[code] < was[code] for code in codes)


def check_fix(source: str, finding: Finding, findings: Sequence[Finding], reanalyze: Reanalyze) -> bool:
    """Whether ``finding``'s fix, applied alone to ``source``, passes every check (``findings``: the
    report of ``source`` it belongs to)."""
    fix = finding.fix
    if fix is None or not fix.edits or not _changes_something(source, fix):
        return False
    applied = _Applied(source, [fix])
    if not _parses(applied.text):
        return False
    after = reanalyze(applied.text, frozenset([finding.code]))
    return _fewer(findings, after, [finding.code]) and _batch_holds(source, [finding], after, applied)


def _chosen(source: str, findings: Sequence[Finding]) -> list[Finding]:
    """The fixable findings whose fixes do not overlap an earlier one's (as :func:`apply_fixes` picks)."""
    starts = line_starts(source)
    taken: list[tuple[int, int]] = []
    chosen = []
    for finding in sorted(findings, key=lambda f: (f.start, f.code)):
        spans = [(offset_of(starts, e.start), offset_of(starts, e.end)) for e in finding.fix.edits]
        if any(b <= te and tb <= e for b, e in spans for tb, te in taken):
            continue
        chosen.append(finding)
        taken.extend(spans)
    return chosen


def verify_fixes(source: str, report: FileReport, reanalyze: Reanalyze) -> FileReport:
    """``report`` with every fix that fails a check removed (its finding then says "no safe fix")."""
    fixable = [f for f in report.findings if f.fix is not None]
    if not fixable:
        return report
    good: set[int] = set()
    candidates = [f for f in fixable if f.fix.edits and _changes_something(source, f.fix)]
    batch = _chosen(source, candidates)
    if batch:
        applied = _Applied(source, [f.fix for f in batch])
        if _parses(applied.text):
            codes = Counter(f.code for f in batch)
            after = reanalyze(applied.text, frozenset(codes))
            was = Counter(f.code for f in report.findings)
            now = Counter(f.code for f in after.findings)
            if all(now[c] <= was[c] - n for c, n in codes.items()) and _batch_holds(source, batch, after, applied):
                good.update(id(f) for f in batch)
    for finding in candidates:
        if id(finding) not in good and check_fix(source, finding, report.findings, reanalyze):
            good.add(id(finding))
    findings = [
        f if f.fix is None or id(f) in good else replace(f, fix=None, message=f"{f.message} ({NO_SAFE_FIX})")
        for f in report.findings
    ]
    return replace(report, findings=findings)
