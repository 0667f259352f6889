"""A parsed text that knows where its top-level statements lie, and that reparses an edited version of
itself by parsing only the statements the edit touched.

Python's tokenizer starts afresh after every complete top-level statement (no open bracket or string, at
column 0), so the statements before and after an edit parse the same in the new text as in the old one.
:meth:`ParsedSource.reparse` finds the changed span (common prefix and suffix of the two texts), parses
the statements it touches plus the one before (an indented line typed after a function joins its body),
and splices them between the untouched statement nodes, which are kept as the very same objects — so
per-statement work (see :class:`~torchsanity.analyzers.model.ProgramModel`) can be reused. Anything out
of the ordinary (the slice does not parse, its indentation or newline style differs from the file's)
falls back to parsing the whole text, which is always correct.
"""

from __future__ import annotations

import ast
import warnings
from bisect import bisect_right
from dataclasses import dataclass, field
from itertools import accumulate

import libcst as cst

from .source import parse_source

_PARSE_FAILURES = (cst.ParserSyntaxError, RecursionError, MemoryError, ValueError)
_HOLDERS = (cst.FunctionDef, cst.ClassDef)  # top-level statements whose bodies are reparsed piecewise


@dataclass
class _Layout:
    """Sizes of the module's parts, in the order code generation writes them."""

    header_chars: int
    header_lines: int
    chars: list[int]  # per body statement, leading lines included
    lines: list[int]  # newlines per body statement
    # Newlines of the statements in the bodies of top-level functions and classes, measured on demand
    # and shared by the versions that keep those statements: {id(statement): (statement, newlines)}.
    inner: dict[int, tuple[cst.CSTNode, int]] = field(default_factory=dict)


class ParsedSource:
    """``text`` and its libcst ``module``. Build with :meth:`parse`; derive edits with :meth:`reparse`."""

    def __init__(self, text: str, module: cst.Module, layout: _Layout | None = None) -> None:
        self.text = text
        self.module = module
        self._layout = layout

    @classmethod
    def parse(cls, text: str) -> "ParsedSource":
        """Parse all of ``text``; raises ``libcst.ParserSyntaxError`` (or RecursionError / MemoryError /
        ValueError for pathological input) like :func:`parse_source`."""
        return cls(text, parse_source(text))

    # ---- layout ---------------------------------------------------------------------------------

    def layout(self) -> _Layout:
        if self._layout is None:
            module = self.module
            header = "".join(module.code_for_node(line) for line in module.header)
            codes = [module.code_for_node(statement) for statement in module.body]
            self._layout = _Layout(len(header), header.count("\n"), [len(c) for c in codes], [c.count("\n") for c in codes])
        return self._layout

    def statement_lines(self) -> dict[int, int]:
        """``{id(statement): the 1-based line where its code (leading lines included) begins}``."""
        layout = self.layout()
        starts = accumulate(layout.lines[:-1], initial=layout.header_lines + 1)
        return {id(statement): line for statement, line in zip(self.module.body, starts)}

    # ---- reparsing ------------------------------------------------------------------------------

    def reparse(self, text: str) -> "ParsedSource":
        """The parse of ``text``, an edited version of this source. Raises ``SyntaxError`` (CPython's, with
        its location) or ``libcst.ParserSyntaxError`` when ``text`` does not parse."""
        if text == self.text:
            return self
        body = self.module.body
        if not body:
            return ParsedSource.parse(text)
        layout = self.layout()
        old = self.text
        prefix = _common_prefix(old, text)
        suffix = _common_suffix(old, text, min(len(old), len(text)) - prefix)
        starts = list(accumulate(layout.chars[:-1], initial=layout.header_chars))
        changed_end = max(prefix, len(old) - suffix - 1)
        holder = bisect_right(starts, prefix) - 1
        if holder >= 0 and holder == bisect_right(starts, changed_end) - 1 and type(body[holder]) in _HOLDERS:
            inside = self._reparse_inside(text, holder, starts[holder], prefix, changed_end)
            if inside is not None:
                return inside
        first = max(bisect_right(starts, prefix) - 2, 0)  # the statement holding the edit, and the one before
        last = max(bisect_right(starts, changed_end) - 1, first)
        start = 0 if first == 0 else starts[first]
        if start and text[start - 1: start + 1] == "\r\n":
            return ParsedSource.parse(text)  # a CR that ended the statement before now pairs with an LF
        while True:  # the slice must end where a line ends, or the next statement would start mid-line
            old_end = len(old) if last == len(body) - 1 else starts[last + 1]
            end = old_end + len(text) - len(old)
            if old_end == len(old) or _ends_line(text, end):
                break
            last += 1
        if first == 0 and old_end == len(old):
            return ParsedSource.parse(text)
        snippet = text[start:end]
        try:
            piece = parse_source(snippet)
        except _PARSE_FAILURES:
            return _parse_after_failure(text)
        spliced = self._splice(text, piece, first, last)
        return spliced if spliced is not None else ParsedSource.parse(text)

    def _splice(self, text: str, piece: cst.Module, first: int, last: int) -> "ParsedSource | None":
        """The new source with ``piece`` in place of statements ``first..last``; None when the piece
        does not fit (the caller parses the whole text)."""
        module, layout = self.module, self.layout()
        body = list(module.body)
        at_start, at_end = first == 0, last == len(body) - 1
        new = list(piece.body)
        if not new or piece.default_newline != module.default_newline:
            return None
        if piece.default_indent != module.default_indent and any(
            not isinstance(statement, cst.SimpleStatementLine) for statement in new
        ):
            return None
        if piece.header and not at_start:  # lines before the first statement are its leading lines
            new[0] = new[0].with_changes(leading_lines=(*piece.header, *new[0].leading_lines))
        rest = body[last + 1:]
        kept_after = layout.chars[last + 1:], layout.lines[last + 1:]
        if piece.footer and not at_end:  # lines after the last statement lead into the next one
            rest[0] = rest[0].with_changes(leading_lines=(*piece.footer, *rest[0].leading_lines))
            new.append(rest.pop(0))
            kept_after = kept_after[0][1:], kept_after[1][1:]
        spliced = module.with_changes(
            body=(*body[:first], *new, *rest),
            header=piece.header if at_start else module.header,
            footer=piece.footer if at_end else module.footer,
            has_trailing_newline=piece.has_trailing_newline if at_end else module.has_trailing_newline,
        )
        codes = [spliced.code_for_node(statement) for statement in new]
        if at_start:
            header = "".join(spliced.code_for_node(line) for line in spliced.header)
            header_chars, header_lines = len(header), header.count("\n")
        else:
            header_chars, header_lines = layout.header_chars, layout.header_lines
        new_layout = _Layout(
            header_chars,
            header_lines,
            [*layout.chars[:first], *(len(c) for c in codes), *kept_after[0]],
            [*layout.lines[:first], *(c.count("\n") for c in codes), *kept_after[1]],
        )
        return ParsedSource(text, spliced, new_layout)


    def _reparse_inside(self, text: str, index: int, offset: int, prefix: int, changed_end: int) -> "ParsedSource | None":
        """Reparse an edit that lies within the body of the top-level function or class ``index`` (which
        starts at ``offset``): only the body statements it touches (and the one before) are parsed, at
        their own indentation under a stand-in ``class _:`` line. None when the edit does not fit."""
        module, layout = self.module, self.layout()
        holder = module.body[index]
        block = holder.body
        if type(block) is not cst.IndentedBlock or not block.body or module.default_newline == "\r":
            return None
        old = self.text
        counts = [self._inner_newlines(statement) for statement in block.body]
        before = layout.lines[index] - sum(counts) - len(block.footer)  # leading lines, decorators, header
        line_starts = _line_starts(old, offset, layout.lines[index] - len(block.footer) + 1)
        if len(line_starts) <= before + sum(counts):
            return None
        statement_starts = [line_starts[line] for line in accumulate(counts[:-1], initial=before)]
        body_end = line_starts[before + sum(counts)]
        if prefix < statement_starts[0] or changed_end >= body_end:
            return None
        first = max(bisect_right(statement_starts, prefix) - 2, 0)
        last = max(bisect_right(statement_starts, changed_end) - 1, first)
        while True:  # end the slice where a line ends, as in :meth:`reparse`
            old_end = statement_starts[last + 1] if last + 1 < len(statement_starts) else body_end
            end = old_end + len(text) - len(old)
            if _ends_line(text, end):
                break
            last += 1
            if last == len(statement_starts):
                return None
        start = statement_starts[first]
        if text[start - 1: start + 1] == "\r\n":
            return None
        try:
            piece = parse_source("class _:" + module.default_newline + text[start:end])
        except _PARSE_FAILURES:
            return None
        stand_in = piece.body[0] if len(piece.body) == 1 else None
        if (
            type(stand_in) is not cst.ClassDef
            or type(stand_in.body) is not cst.IndentedBlock
            or not stand_in.body.body
            or piece.header
            or (piece.default_indent, piece.default_newline) != (module.default_indent, module.default_newline)
            or (stand_in.body.indent or piece.default_indent) != (block.indent or module.default_indent)
        ):
            return None
        new = list(stand_in.body.body)
        replaced = counts[first: last + 1]
        rest = list(block.body[last + 1:])
        # Lines after the last statement lead into the next one. Those the stand-in left at module level
        # keep their text with `indent=False` (their whitespace already holds all of it).
        trailing = (*stand_in.body.footer, *(line.with_changes(indent=False) for line in piece.footer))
        if trailing:
            if not rest:
                return None
            rest[0] = rest[0].with_changes(leading_lines=(*trailing, *rest[0].leading_lines))
            new.append(rest.pop(0))
            replaced = counts[first: last + 2]
        new_holder = holder.with_changes(body=block.with_changes(body=(*block.body[:first], *new, *rest)))
        spliced = module.with_changes(body=(*module.body[:index], new_holder, *module.body[index + 1:]))
        for statement in block.body[first: first + len(replaced)]:
            layout.inner.pop(id(statement), None)
        added = sum(self._inner_newlines(statement, spliced) for statement in new)
        chars, lines = list(layout.chars), list(layout.lines)
        chars[index] += len(text) - len(old)
        lines[index] += added - sum(replaced)
        return ParsedSource(text, spliced, _Layout(layout.header_chars, layout.header_lines, chars, lines, layout.inner))

    def _inner_newlines(self, statement: cst.CSTNode, module: cst.Module | None = None) -> int:
        """Newlines of a statement in a top-level body (indentation does not change the count)."""
        known = self.layout().inner.get(id(statement))
        if known is not None and known[0] is statement:
            return known[1]
        count = (module or self.module).code_for_node(statement).count("\n")
        self.layout().inner[id(statement)] = (statement, count)
        return count


def _line_starts(text: str, offset: int, count: int) -> list[int]:
    """The offsets of the (at most) ``count`` lines that begin at ``offset``."""
    starts = [offset]
    while len(starts) < count:
        found = text.find("\n", starts[-1])
        if found < 0:
            break
        starts.append(found + 1)
    return starts


def _parse_after_failure(text: str) -> ParsedSource:
    """Parse all of ``text`` after the edited statements did not parse alone. The error is almost always
    real, so CPython's parser (several times faster than libcst's, and precise about where) is asked
    first; only text it accepts goes to libcst."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # invalid escapes and the like: not ours to report
            compile(text, "<source>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    except (ValueError, RecursionError, MemoryError):
        pass
    return ParsedSource.parse(text)


def _ends_line(text: str, end: int) -> bool:
    """Whether a line ends at ``end`` (``\\r\\n`` counts as one line break)."""
    if end <= 0:
        return False
    last = text[end - 1]
    return last == "\n" or (last == "\r" and not text.startswith("\n", end))


def _common_prefix(a: str, b: str) -> int:
    """The length of the longest common prefix of ``a`` and ``b`` (string comparisons run in C)."""
    size = min(len(a), len(b))
    if a[:size] == b[:size]:
        return size
    low, high = 0, size  # a[:low] == b[:low], a[:high] != b[:high]
    while high - low > 1:
        middle = (low + high) // 2
        if a[low:middle] == b[low:middle]:
            low = middle
        else:
            high = middle
    return low


def _common_suffix(a: str, b: str, limit: int) -> int:
    """The length of the longest common suffix of ``a`` and ``b``, at most ``limit``."""
    la, lb = len(a), len(b)
    if a[la - limit:] == b[lb - limit:]:
        return limit
    low, high = 0, limit
    while high - low > 1:
        middle = (low + high) // 2
        if a[la - middle: la - low] == b[lb - middle: lb - low]:
            low = middle
        else:
            high = middle
    return low
