"""Applying text edits to source text."""

from __future__ import annotations

import re
from typing import Iterable

from .findings import Finding, Position, TextEdit

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks Python and libcst count (str.splitlines counts more)


def line_starts(source: str) -> list[int]:
    """The offset where each line of ``source`` begins (``\r\n``, ``\r`` and ``\n`` end lines)."""
    return [0, *(match.end() for match in _LINE_BREAK.finditer(source))]


def offset_of(starts: list[int], position: Position) -> int:
    """The offset of ``position`` (1-based line, 0-based column) given :func:`line_starts`."""
    return starts[min(position.line, len(starts)) - 1] + position.column


def apply_edits(source: str, edits: Iterable[TextEdit]) -> str:
    """Apply non-overlapping edits (overlapping ones after the first are dropped)."""
    starts = line_starts(source)
    spans = sorted(
        ((offset_of(starts, e.start), offset_of(starts, e.end), e.new_text) for e in edits),
        key=lambda s: (s[0], s[1]),
    )
    out: list[str] = []
    cursor = 0
    for begin, end, text in spans:
        if begin < cursor:
            continue  # overlaps an edit already taken
        out.append(source[cursor:begin])
        out.append(text)
        cursor = end
    out.append(source[cursor:])
    return "".join(out)


def apply_fixes(source: str, findings: Iterable[Finding]) -> str:
    """Apply the fixes of ``findings`` once; a fix that overlaps an earlier one is left for the next
    round (call again until nothing changes)."""
    starts = line_starts(source)
    chosen: list[TextEdit] = []
    taken: list[tuple[int, int]] = []
    for finding in sorted(findings, key=lambda f: (f.start, f.code)):
        if finding.fix is None:
            continue
        spans = [(offset_of(starts, e.start), offset_of(starts, e.end)) for e in finding.fix.edits]
        if any(b < te and tb < e or (b == e == tb == te) for b, e in spans for tb, te in taken):
            continue
        chosen.extend(finding.fix.edits)
        taken.extend(spans)
    return apply_edits(source, chosen)
