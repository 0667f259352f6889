"""Reading and parsing source text: one place that knows about encodings and the parser."""

from __future__ import annotations

import os
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


def parse_source(text: str) -> cst.Module:
    return cst.parse_module(text)
