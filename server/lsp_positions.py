"""Positions between the engine and the client.

The engine (libcst) reports 1-based lines and 0-based columns counted in Unicode code points. LSP
clients count 0-based lines and columns in the *position encoding* negotiated at ``initialize``:
UTF-16 code units unless client and server agreed on ``utf-8`` or ``utf-32``. A line with an emoji
(two UTF-16 units) or CJK text (three UTF-8 bytes per character) must still underline the right token,
so every position that crosses the wire goes through :class:`LineIndex`.

Lines are split as LSP splits them (``\\r\\n``, ``\\r``, ``\\n``), not as :meth:`str.splitlines` does
(which also breaks on form feeds and ``\\u2028``, both of which Python source may contain).
"""

from __future__ import annotations

import re
from lsprotocol import types

from ..analyzers import Position

_LINE_BREAK = re.compile(r"\r\n|\r|\n")

UTF8 = "utf-8"
UTF16 = "utf-16"
UTF32 = "utf-32"


def split_lines(text: str) -> list[str]:
    """The lines of ``text`` without their line breaks (LSP semantics; a trailing break opens an
    empty last line, as the client sees it)."""
    return _LINE_BREAK.split(text)


def split_lines_keepends(text: str) -> list[str]:
    """The lines of ``text`` with their line breaks; no empty last line."""
    out: list[str] = []
    start = 0
    for match in _LINE_BREAK.finditer(text):
        out.append(text[start : match.end()])
        start = match.end()
    if start < len(text):
        out.append(text[start:])
    return out


def normalize_encoding(encoding: object) -> str:
    value = getattr(encoding, "value", encoding)
    if value in (UTF8, UTF32):
        return str(value)
    return UTF16


def units(text: str, encoding: str) -> int:
    """How many code units of ``encoding`` ``text`` takes."""
    if encoding == UTF32 or text.isascii():
        return len(text)
    if encoding == UTF16:
        return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)
    return len(text.encode("utf-8", errors="surrogatepass"))


def column_from_units(line: str, count: int, encoding: str) -> int:
    """The code-point column that ``count`` client units into ``line`` falls on (clamped to the
    line; a position inside a character rounds down to its start)."""
    if count <= 0:
        return 0
    if encoding == UTF32 or line.isascii():
        return min(count, len(line))
    used = 0
    for index, ch in enumerate(line):
        width = units(ch, encoding)
        if used + width > count:
            return index
        used += width
    return len(line)


class LineIndex:
    """One text's lines, for converting positions both ways."""

    __slots__ = ("text", "lines", "encoding", "_starts")

    def __init__(self, text: str, encoding: str = UTF16) -> None:
        self.text = text
        self.lines: list[str] = split_lines(text)
        self.encoding = normalize_encoding(encoding)
        self._starts: list[int] | None = None

    # ---- engine → client ------------------------------------------------------------------------

    def line_text(self, line0: int) -> str:
        return self.lines[line0] if 0 <= line0 < len(self.lines) else ""

    def to_client(self, position: Position) -> types.Position:
        """Engine position (1-based line, code-point column) → LSP position."""
        line0 = max(position.line - 1, 0)
        if line0 >= len(self.lines):  # past the end: the end of the text
            line0 = len(self.lines) - 1
            return types.Position(line=line0, character=units(self.lines[line0], self.encoding))
        text = self.lines[line0]
        column = min(max(position.column, 0), len(text))
        return types.Position(line=line0, character=units(text[:column], self.encoding))

    def range_to_client(self, start: Position, end: Position) -> types.Range:
        return types.Range(start=self.to_client(start), end=self.to_client(end))

    def end_position(self) -> types.Position:
        last = len(self.lines) - 1
        return types.Position(line=last, character=units(self.lines[last], self.encoding))

    def full_range(self) -> types.Range:
        return types.Range(start=types.Position(line=0, character=0), end=self.end_position())

    # ---- client → engine ------------------------------------------------------------------------

    def from_client(self, position: types.Position) -> Position:
        """LSP position → engine position (clamped to the text)."""
        line0 = min(max(position.line, 0), len(self.lines) - 1)
        column = column_from_units(self.lines[line0], position.character, self.encoding)
        return Position(line0 + 1, column)

    # ---- offsets ------------------------------------------------------------------------------

    def offset(self, position: Position) -> int:
        """The code-point offset of an engine position in the text."""
        if self._starts is None:
            starts = [0]
            starts.extend(m.end() for m in _LINE_BREAK.finditer(self.text))
            self._starts = starts
        line0 = min(max(position.line - 1, 0), len(self._starts) - 1)
        return self._starts[line0] + min(position.column, len(self.lines[line0]))

    def position_at(self, offset: int) -> Position:
        if self._starts is None:
            self.offset(Position(1, 0))
        assert self._starts is not None
        import bisect

        line0 = max(bisect.bisect_right(self._starts, offset) - 1, 0)
        return Position(line0 + 1, offset - self._starts[line0])


def contains(rng: types.Range, pos: types.Position) -> bool:
    start = (rng.start.line, rng.start.character)
    end = (rng.end.line, rng.end.character)
    return start <= (pos.line, pos.character) <= end


def overlaps(a: types.Range, b: types.Range) -> bool:
    a0, a1 = (a.start.line, a.start.character), (a.end.line, a.end.character)
    b0, b1 = (b.start.line, b.start.character), (b.end.line, b.end.character)
    return a0 <= b1 and b0 <= a1


def minimal_edit(old: str, new: str, index: LineIndex) -> types.TextEdit | None:
    """One edit turning ``old`` (indexed by ``index``) into ``new``: the changed middle only, so the
    client keeps the cursor and folding outside it. None when nothing changes."""
    if old == new:
        return None
    prefix = 0
    limit = min(len(old), len(new))
    while prefix < limit and old[prefix] == new[prefix]:
        prefix += 1
    suffix = 0
    while suffix < limit - prefix and old[len(old) - 1 - suffix] == new[len(new) - 1 - suffix]:
        suffix += 1
    # Start the edit at a line start: never inside a \r\n pair.
    start_pos = index.position_at(prefix)
    start_pos = Position(start_pos.line, 0)
    start_offset = index.offset(start_pos)
    end_offset = len(old) - suffix
    end_pos = index.position_at(end_offset)
    replacement = new[start_offset : len(new) - suffix]
    return types.TextEdit(range=index.range_to_client(start_pos, end_pos), new_text=replacement)

