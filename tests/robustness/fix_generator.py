"""Valid Python files with the rules' patterns inserted, for the fix property tests and benchmark.

A file is a sequence of pieces: each rule's own invalid examples (the patterns its fixes rewrite), valid
examples, realistic scripts from tests/analyzers/corpus and examples/, and filler (comments, blank lines,
a line holding only a backslash, form feeds), joined with one line-ending style (LF, CRLF or a mix),
with or without a final newline. Every piece is valid Python on its own at module level, so the file is.
"""

from __future__ import annotations

import random
from pathlib import Path

from torchsanity.analyzers import all_rules

ROOT = Path(__file__).resolve().parents[2]
CORPUS = sorted((ROOT / "tests" / "analyzers" / "corpus").glob("*.py")) + sorted((ROOT / "examples").glob("*.py"))


def _pieces() -> list[str]:
    pieces = []
    for rule in all_rules():
        pieces += [example.code for example in rule.INVALID]
        pieces += [example.code for example in rule.VALID]
    return [p if p.endswith("\n") else p + "\n" for p in pieces]


PIECES = _pieces()
SCRIPTS = [path.read_text(encoding="utf-8") for path in CORPUS]
FILLER = ["\n", "# a comment\n", "\\\n", "\x0c\n", "pass\n", "x = 1  # noqa: E501\n", "'''doc\nstring'''\n"]


def _compiles(text: str) -> bool:
    try:
        compile(text, "<generated>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def generate(rng: random.Random) -> str:
    """One generated file (valid Python)."""
    parts: list[str] = []
    if rng.random() < 0.3:
        parts.append(rng.choice(SCRIPTS))
    for _ in range(rng.randint(1, 5)):
        parts.append(rng.choice(PIECES))
        for _ in range(rng.randint(0, 2)):
            parts.append(rng.choice(FILLER))
    text = "".join(p if p.endswith("\n") else p + "\n" for p in parts)
    if text.endswith("\\\n"):
        text += "pass\n"  # a continuation needs a line to continue
    style = rng.random()
    if style < 0.2:
        text = text.replace("\n", "\r\n")
    elif style < 0.3:  # mixed: some lines CRLF
        lines = text.split("\n")
        text = "".join(line + ("\r\n" if rng.random() < 0.5 else "\n") for line in lines[:-1]) + lines[-1]
    if rng.random() < 0.2:
        text = text.rstrip("\r\n")
    return text if _compiles(text) else "".join(rng.choice(PIECES) for _ in range(2))


def _cut(text: str) -> list[str]:
    parts = text.split("\n")
    return [part + "\n" for part in parts[:-1]] + ([parts[-1]] if parts[-1] else [])


def apply_unified_diff(before: str, diff: str) -> str:
    """Apply a one-file unified diff as `patch` does (lines end at ``\\n`` only); raises AssertionError
    when a context or removed line does not match ``before``."""
    old, lines = _cut(before), _cut(diff)
    assert lines[0].startswith("--- ") and lines[1].startswith("+++ "), lines[:2]
    out: list[str] = []
    cursor, i = 0, 2
    while i < len(lines):
        header = lines[i]
        assert header.startswith("@@ -"), header
        start = int(header[4:].split(" ")[0].split(",")[0])
        count = header[4:].split(" ")[0].split(",")
        begin = start - 1 if (len(count) == 1 or count[1] != "0") else start
        out.extend(old[cursor:begin])
        cursor = begin
        i += 1
        while i < len(lines) and not lines[i].startswith("@@ -"):
            kind, text = lines[i][0], lines[i][1:]
            if i + 1 < len(lines) and lines[i + 1].startswith("\\"):
                text = text[:-1]  # "\\ No newline at end of file": this line has none
                i += 1
            if kind in " -":
                assert old[cursor] == text, (old[cursor], text)
                cursor += 1
            if kind in " +":
                out.append(text)
            i += 1
    out.extend(old[cursor:])
    return "".join(out)
