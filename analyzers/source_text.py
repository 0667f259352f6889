"""Source text as CPython reads it: :func:`read_source` decodes as CPython does (PEP 263 cookie, BOM), and refuses,
with CPython's reason, what CPython refuses: unknown codecs (``# coding: future_fstrings``), codecs that are not
text encodings (``rot13``, ``hex``, ``zlib_codec``), a BOM that contradicts the cookie, bytes the codec cannot
decode. Free of libcst, so that a front end showing source lines does not load the parser."""

from __future__ import annotations

import codecs
import io
import tokenize
from pathlib import Path


class UndecodableSource(ValueError):
    """Bytes that Python would not accept as source text; the message says why."""


def read_source(path: str | Path) -> str:
    """The text of a Python file, decoded as Python would (PEP 263 cookie, BOM); raises
    :class:`UndecodableSource` (a ValueError) for binary or undecodable files, OSError if unreadable."""
    with open(path, "rb") as handle:
        data = handle.read()
    return decode_source(data)


def decode_source(data: bytes) -> str:
    """``data`` decoded as CPython decodes a source file; raises :class:`UndecodableSource`."""
    if b"\x00" in data:
        raise UndecodableSource("binary file (contains NUL bytes)")
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:  # an unknown codec, a BOM that contradicts the cookie, bytes not UTF-8
        reason = str(error.msg if hasattr(error, "msg") else error).removeprefix("encoding problem: ")
        if data.startswith(codecs.BOM_UTF8):
            reason = f"the UTF-8 byte order mark contradicts the coding cookie ({reason})"
        elif reason == "invalid or missing encoding declaration":
            reason = "not valid UTF-8, and no coding cookie says otherwise"
        raise UndecodableSource(f"encoding problem: {reason}") from None
    try:
        text = data.decode(encoding)
        if b"#\n".decode(encoding) != "#\n":  # utf-16 / utf-32 cookies: Python rejects them too
            raise UnicodeError("not an ASCII-compatible encoding")
    except LookupError:  # rot13, hex, zlib_codec: codecs, but not text encodings
        raise UndecodableSource(f"encoding problem: {encoding!r} is not a text encoding") from None
    except UnicodeError as error:
        raise UndecodableSource(f"encoding problem: cannot decode as {encoding}: {_reason(error)}") from None
    return text[1:] if text.startswith("\ufeff") else text


def _reason(error: UnicodeError) -> str:
    if isinstance(error, UnicodeDecodeError):
        return f"invalid byte {error.object[error.start:error.start + 1]!r} at offset {error.start}"
    return str(error)
