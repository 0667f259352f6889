"""Reading and parsing source text: one place that knows about encodings and the parser."""

from __future__ import annotations

import ast
import os
import re
import tokenize
from pathlib import Path

# The native (Rust) parser: fast, and it accepts every Python version libcst knows.
os.environ.setdefault("LIBCST_PARSER_TYPE", "native")

import libcst as cst  # noqa: E402


def read_source(path: str | Path) -> str:
    """The text of a Python file, decoded as Python would (PEP 263 cookie, BOM); raises
    UnicodeDecodeError / ValueError for binary or undecodable files."""
    with open(path, "rb") as handle:
        data = handle.read()
    if b"\x00" in data:
        raise ValueError("binary file (contains NUL bytes)")
    with open(path, "rb") as handle:
        encoding, _ = tokenize.detect_encoding(handle.readline)
    text = data.decode(encoding)
    return text[1:] if text.startswith("\ufeff") else text


# CPython refuses more than 200 nested brackets; libcst's native parser overflows its stack (and kills the
# process) somewhere past 1,500, so deeper nesting is handed to CPython's own parser first.
_MAX_NESTING = 200
_BRACKETS = re.compile(r"[()\[\]{}]")
_OPENING = frozenset("([{")


def _bracket_depth_exceeds(text: str, limit: int) -> bool:
    """Whether brackets nest deeper than ``limit`` (strings and comments counted too: an upper bound)."""
    depth = 0
    for match in _BRACKETS.finditer(text):
        if match.group() in _OPENING:
            depth += 1
            if depth > limit:
                return True
        elif depth:
            depth -= 1
    return False


def parse_source(text: str) -> cst.Module:
    """Parse with libcst; raises ``libcst.ParserSyntaxError`` on invalid code, including nesting too deep
    for CPython (which libcst's native parser would crash on)."""
    if _bracket_depth_exceeds(text, _MAX_NESTING):
        try:
            compile(text, "<source>", "exec", ast.PyCF_ONLY_AST)
        except SyntaxError as error:
            raise cst.ParserSyntaxError(
                error.msg, lines=text.splitlines() or [""], raw_line=error.lineno or 1, raw_column=max((error.offset or 1) - 1, 0)
            ) from None
        except (RecursionError, MemoryError):
            raise cst.ParserSyntaxError("too deeply nested", lines=[""], raw_line=1, raw_column=0) from None
    return cst.parse_module(text)
