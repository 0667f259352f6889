"""Positions of just the nodes that findings and fixes mention.

libcst's PositionProvider tracks every node of the module, which costs more than parsing. Findings are
few, so the module is cut at its top-level statements: the first line of each comes from the caller
(an incremental parse knows it) or from plain code generation (cheap), and the position pass runs only
over the statements that hold a reported node.

Every position is one of the *original text*: libcst drops some text (a line holding only a backslash),
so the code it generates for each reported statement is compared with the text at that line first, and
when they differ the lines of the generated code are mapped back onto the text's (or, when they cannot
be, the statement's positions are left out: its findings are reported without a fix).
"""

from __future__ import annotations

from typing import Iterable

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from .fixes import line_starts
from .model import ProgramModel


def locate(
    model: ProgramModel,
    nodes: Iterable[cst.CSTNode],
    statement_lines: dict[int, int] | None = None,
    source: str | None = None,
    cache: "StatementPositions | None" = None,
) -> "Ranges":
    """``{node: CodeRange}`` for ``nodes``, in the coordinates of ``source`` (the text that was parsed;
    without it, those of libcst's generated code). ``statement_lines``: ``{id(statement): the line where
    its code begins}`` for the module's top-level statements (in generated code). ``cache``: positions of
    statements kept from an earlier version of the same buffer (then only ``nodes`` are placed)."""
    module = model.module
    body_ids = {id(statement): statement for statement in module.body}
    wanted: dict[int, cst.CSTNode] = {}
    owners: dict[cst.CSTNode, int] = {}
    for node in nodes:
        top = node
        while top is not None and id(top) not in body_ids:
            top = model.parent(top)
        if top is None:
            if node is module:  # the module itself: track everything
                ranges = Ranges(MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider))
                return ranges if source is None or module.code == source else _mapped(ranges, module.code, source)
            continue  # not part of this module: the caller reports the rule's mistake
        wanted[id(top)] = top
        owners[node] = id(top)
    own = statement_lines is None
    if own:
        statement_lines = _statement_lines(module, wanted)
    if cache is not None and not own and source is not None:
        placed = cache.place(module, wanted, statement_lines, owners, source)
        if placed is not None:
            return placed
    ranges = _ranges(module, wanted, statement_lines)
    if source is None or _match_source(module, wanted, statement_lines, source):
        return ranges
    if not own:  # the caller counted lines its own way: count them here before mapping
        statement_lines = _statement_lines(module, wanted)
        ranges = _ranges(module, wanted, statement_lines)
        if _match_source(module, wanted, statement_lines, source):
            return ranges
    return _mapped(ranges, module.code, source)


def _ranges(module: cst.Module, wanted: dict[int, cst.CSTNode], statement_lines: dict[int, int]) -> "Ranges":
    ranges = Ranges()
    for key, statement in wanted.items():
        piece = module.with_changes(body=(statement,), header=(), footer=())
        offset = statement_lines[key] - 1
        for node, code_range in MetadataWrapper(piece, unsafe_skip_copy=True).resolve(PositionProvider).items():
            ranges[node] = CodeRange(
                CodePosition(code_range.start.line + offset, code_range.start.column),
                CodePosition(code_range.end.line + offset, code_range.end.column),
            )
    return ranges


def _match_source(
    module: cst.Module, wanted: dict[int, cst.CSTNode], statement_lines: dict[int, int], source: str
) -> bool:
    """Whether each wanted statement's generated code is the source's text at the line it is said to
    begin on (then every position inside it is one of the source)."""
    starts = line_starts(source)
    for key, statement in wanted.items():
        line = statement_lines[key]
        if line > len(starts):
            return False
        code = module.code_for_node(statement)
        begin = starts[line - 1]
        if source[begin: begin + len(code)] != code:
            return False
    return True


class StatementPositions:
    """Positions inside top-level statements, relative to each statement's first line, with the code the
    statement generates: kept across the versions of one buffer, whose incremental parse keeps untouched
    statements as the very same nodes, so an edit places the findings of the other statements by their new
    first line without another position pass."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[cst.CSTNode, tuple, str, dict[cst.CSTNode, CodeRange]]] = {}

    def place(
        self,
        module: cst.Module,
        wanted: dict[int, cst.CSTNode],
        statement_lines: dict[int, int],
        owners: dict[cst.CSTNode, int],
        source: str,
    ) -> "Ranges | None":
        """``{node: CodeRange}`` for the nodes of ``owners`` (``{node: id of its top-level statement}``), or
        None when a wanted statement's code is not the source's text at its line (the caller maps lines then)."""
        layout = (module.default_indent, module.default_newline, module.has_trailing_newline)
        starts = line_starts(source)
        for key, statement in wanted.items():
            entry = self._entries.get(key)
            if entry is None or entry[0] is not statement or entry[1] != layout:
                piece = module.with_changes(body=(statement,), header=(), footer=())
                found = MetadataWrapper(piece, unsafe_skip_copy=True).resolve(PositionProvider)
                entry = (statement, layout, module.code_for_node(statement), dict(found))
                self._entries[key] = entry
            line, code = statement_lines[key], entry[2]
            if line > len(starts) or source[starts[line - 1]: starts[line - 1] + len(code)] != code:
                return None
        out = Ranges()
        for node, key in owners.items():
            code_range = self._entries[key][3].get(node)
            if code_range is not None:
                offset = statement_lines[key] - 1
                out[node] = CodeRange(
                    CodePosition(code_range.start.line + offset, code_range.start.column),
                    CodePosition(code_range.end.line + offset, code_range.end.column),
                )
        return out

    def keep(self, module: cst.Module) -> None:
        """Forget the statements that are no longer in ``module``."""
        live = {id(statement): statement for statement in module.body}
        self._entries = {k: v for k, v in self._entries.items() if live.get(k) is v[0]}


class Ranges(dict):
    """``{node: CodeRange}``; ``inexact`` holds the nodes whose lines could only be estimated (their
    findings are reported, their fixes never offered)."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self.inexact: set[cst.CSTNode] = set()


def _mapped(ranges: dict[cst.CSTNode, CodeRange], generated: str, source: str) -> Ranges:
    """``ranges`` (in ``generated``'s lines) moved onto ``source``'s lines."""
    line_map = align_lines(generated, source)
    out = Ranges()
    for node, code_range in ranges.items():
        start, end = line_map.get(code_range.start.line), line_map.get(code_range.end.line)
        if start is None or end is None:
            start = _estimate(line_map, code_range.start.line)
            end = max(start, _estimate(line_map, code_range.end.line))
            out.inexact.add(node)
        out[node] = CodeRange(CodePosition(start, code_range.start.column), CodePosition(end, code_range.end.column))
    return out


def _estimate(line_map: dict[int, int], line: int) -> int:
    """The source line of generated ``line`` when it has no exact match: counted back from the next line
    that has one (the lines libcst drops or joins come before the code they belong to)."""
    after = min((g for g in line_map if g > line), default=None)
    if after is not None:
        return max(1, line_map[after] - (after - line))
    before = max((g for g in line_map if g < line), default=0)
    return line_map.get(before, 0) + line - before


def align_lines(generated: str, source: str, window: int = 4) -> dict[int, int]:
    """``{line of generated: the same line in source}`` (1-based) for the code libcst generates from a
    parse of ``source``, which may lack or join some of its lines: each generated line is matched with
    an equal source line among the next few; one that has none is left out (it stands for one source
    line, and the match goes on after it)."""
    generated_lines = _lines(generated)
    source_lines = _lines(source)
    out: dict[int, int] = {}
    j = 0
    for i, line in enumerate(generated_lines):
        for k in range(j, min(j + window, len(source_lines))):
            if source_lines[k] == line:
                out[i + 1] = k + 1
                j = k + 1
                break
        else:
            j += 1
    return out


def _line_breaks(code: str) -> int:
    """The line breaks in ``code``: ``\\r\\n``, ``\\r`` and ``\\n`` each count once, as for Python."""
    return code.count("\n") + code.count("\r") - code.count("\r\n")


def _lines(text: str) -> list[str]:
    starts = line_starts(text)
    return [text[a:b] for a, b in zip(starts, [*starts[1:], len(text)])]


def _statement_lines(module: cst.Module, wanted: dict[int, cst.CSTNode]) -> dict[int, int]:
    """Where the top-level statements begin, up to the last one in ``wanted``, by code generation."""
    lines: dict[int, int] = {}
    line = 1 + sum(_line_breaks(module.code_for_node(empty)) for empty in module.header)
    remaining = len(wanted)
    for statement in module.body:
        if not remaining:
            break
        lines[id(statement)] = line
        remaining -= id(statement) in wanted
        line += _line_breaks(module.code_for_node(statement))
    return lines
