"""`# noqa` suppression on the reported line, as ruff and flake8 read it."""

from __future__ import annotations

import io
import re
import tokenize
from dataclasses import dataclass

from .findings import Finding, Fix, Position, TextEdit

_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks Python counts
_NOQA = re.compile(r"#\s*noqa(?::\s*(?P<codes>[A-Z]+[0-9]+(?:[\s,]+[A-Z]+[0-9]+)*))?", re.IGNORECASE)


def noqa_codes(line: str) -> frozenset[str] | None:
    """None: no noqa on the line; empty set: bare ``# noqa`` (everything); else the codes named."""
    match = _NOQA.search(line)
    if match is None:
        return None
    codes = match.group("codes")
    if not codes:
        return frozenset()
    return frozenset(code.upper() for code in re.split(r"[\s,]+", codes) if code)


def is_suppressed(code: str, line: str) -> bool:
    codes = noqa_codes(line)
    return codes is not None and (not codes or code in codes)


def add_noqa(line: str, code: str) -> str:
    """The line with ``code`` added to its ``# noqa`` (created if absent)."""
    match = _NOQA.search(line)
    if match is None:
        stripped = line.rstrip()
        return f"{stripped}  # noqa: {code}" + line[len(stripped):]
    codes = noqa_codes(line)
    if not codes or code in codes:
        return line
    merged = ", ".join(sorted(codes | {code}))
    return line[: match.start()] + f"# noqa: {merged}" + line[match.end():]


@dataclass(frozen=True)
class UnusedNoqa:
    """A ``# noqa`` directive naming SAN codes that suppress nothing on its line (SAN100)."""

    line: int  # 1-based
    start: int  # 0-based column of the directive's ``#``
    end: int  # end column of the directive
    codes: tuple[str, ...]  # the unused codes
    unknown: tuple[str, ...]  # those among them that name no rule
    replacement: tuple[int, int, str] | None  # (start column, end column, new text) that removes them


def _comments(source: str) -> list[tuple[int, int, str]]:
    """(line, column, text) of every comment; empty when the text does not tokenize."""
    try:
        return [(tok.start[0], tok.start[1], tok.string) for tok in tokenize.generate_tokens(io.StringIO(source).readline)
                if tok.type == tokenize.COMMENT]
    except (tokenize.TokenError, SyntaxError, IndentationError):
        return []


def unused_noqa(source: str, lines: list[str], suppressed: set[tuple[int, str]], ran: set[str],
                known: frozenset[str]) -> list[UnusedNoqa]:
    """The ``# noqa: SANxxx`` directives whose SAN codes suppressed nothing: a code whose rule ran without
    a finding on that line, or a code no rule has. Other tools' codes (``E501``) and bare ``# noqa`` are
    left alone."""
    if "noqa" not in source.lower():
        return []
    out = []
    for line, column, comment in _comments(source):
        match = _NOQA.search(comment)
        if match is None or not match.group("codes"):
            continue
        named = [code.upper() for code in re.split(r"[\s,]+", match.group("codes")) if code]
        unused = tuple(code for code in named if code.startswith("SAN") and (
            code not in known or code in ran and (line, code) not in suppressed))
        if not unused:
            continue
        kept = [code for code in named if code not in unused]
        start, end = column + match.start(), column + match.end()
        if kept:
            replacement = (start, end, f"# noqa: {', '.join(kept)}")
        elif comment[match.end():].strip() == "":
            text = lines[line - 1] if line <= len(lines) else ""
            code_end = len(text[:start].rstrip())
            replacement = (code_end, column + len(comment), "") if text[:start].strip() else None
        else:
            replacement = None  # other text follows the directive: not ours to rewrite
        out.append(UnusedNoqa(line, start, end, unused, tuple(c for c in unused if c not in known), replacement))
    return out


def unused_noqa_findings(source: str, path: str, suppressed: set[tuple[int, str]], ran: set[str],
                         known: frozenset[str], rule, severity) -> list[Finding]:
    """SAN100 findings (``rule`` is its class), each with the fix that removes the unused codes."""
    lines = _LINE_BREAK.split(source)
    findings = []
    for item in unused_noqa(source, lines, suppressed, ran, known):
        what = ", ".join(item.codes)
        if item.unknown:
            message = f"unused noqa directive: {', '.join(item.unknown)} is not a torchsanity rule"
        else:
            message = f"unused noqa directive: {what} is not reported on this line"
        fix = None
        if item.replacement is not None:
            start, end, text = item.replacement
            fix = Fix(f"Remove unused noqa ({what})", (TextEdit(Position(item.line, start), Position(item.line, end), text),))
        findings.append(Finding(rule.code, rule.name, severity, message, path,
                                Position(item.line, item.start), Position(item.line, item.end), fix))
    return findings
