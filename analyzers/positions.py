"""Positions of just the nodes that findings and fixes mention.

libcst's PositionProvider tracks every node of the module, which costs more than parsing. Findings are
few, so the module is cut at its top-level statements: the first line of each comes from the caller
(an incremental parse knows it) or from plain code generation (cheap), and the position pass runs only
over the statements that hold a reported node.
"""

from __future__ import annotations

from typing import Iterable

import libcst as cst
from libcst.metadata import CodePosition, CodeRange, MetadataWrapper, PositionProvider

from .model import ProgramModel


def locate(
    model: ProgramModel, nodes: Iterable[cst.CSTNode], statement_lines: dict[int, int] | None = None
) -> dict[cst.CSTNode, CodeRange]:
    """``{node: CodeRange}`` for ``nodes``, in the whole file's coordinates. ``statement_lines``:
    ``{id(statement): the line where its code begins}`` for the module's top-level statements."""
    module = model.module
    body_ids = {id(statement): statement for statement in module.body}
    wanted: dict[int, cst.CSTNode] = {}
    for node in nodes:
        top = node
        while top is not None and id(top) not in body_ids:
            top = model.parent(top)
        if top is None:
            if node is module:  # the module itself: track everything
                return MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider)
            continue  # not part of this module: the caller reports the rule's mistake
        wanted[id(top)] = top
    if statement_lines is None:
        statement_lines = _statement_lines(module, wanted)
    ranges: dict[cst.CSTNode, CodeRange] = {}
    for key, statement in wanted.items():
        piece = module.with_changes(body=(statement,), header=(), footer=())
        offset = statement_lines[key] - 1
        for node, code_range in MetadataWrapper(piece, unsafe_skip_copy=True).resolve(PositionProvider).items():
            ranges[node] = CodeRange(
                CodePosition(code_range.start.line + offset, code_range.start.column),
                CodePosition(code_range.end.line + offset, code_range.end.column),
            )
    return ranges


def _statement_lines(module: cst.Module, wanted: dict[int, cst.CSTNode]) -> dict[int, int]:
    """Where the top-level statements begin, up to the last one in ``wanted``, by code generation."""
    lines: dict[int, int] = {}
    line = 1 + sum(module.code_for_node(empty).count("\n") for empty in module.header)
    remaining = len(wanted)
    for statement in module.body:
        if not remaining:
            break
        lines[id(statement)] = line
        remaining -= id(statement) in wanted
        line += module.code_for_node(statement).count("\n")
    return lines
