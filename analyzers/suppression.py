"""`# noqa` suppression on the reported line, as ruff and flake8 read it."""

from __future__ import annotations

import re

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
