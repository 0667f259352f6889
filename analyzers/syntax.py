"""Pure libcst helpers: walking a tree, names, arguments, literals, statements and blocks.

Nothing here knows PyTorch or guesses from names. The few helpers that need a node's parents take the
program model only for :meth:`~torchsanity.analyzers.model.ProgramModel.parent` /
:meth:`~torchsanity.analyzers.model.ProgramModel.ancestors` (one parse, no libcst metadata).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache
from typing import TYPE_CHECKING, Iterator

import libcst as cst

if TYPE_CHECKING:
    from .model import ProgramModel


# Fields that only hold whitespace, parentheses or punctuation: never walked.
_SKIPPED_FIELDS = frozenset(
    {
        "lpar",
        "rpar",
        "leading_lines",
        "lines_after_decorators",
        "header",
        "footer",
        "comma",
        "semicolon",
        "newline",
        "trailing_whitespace",
        "equal",
        "colon",
        "dot",
        "star",
        "whitespace_after_star",
        "whitespace_after_param",
        "whitespace_before_colon",
        "whitespace_after_colon",
    }
)


@lru_cache(maxsize=None)
def _walked_fields(node_type: type) -> tuple[str, ...]:
    return tuple(
        f.name
        for f in dataclasses.fields(node_type)
        if f.name not in _SKIPPED_FIELDS and not f.name.startswith("whitespace")
    )


def _node_types(base: type) -> frozenset[type]:
    found = {base}
    for subclass in base.__subclasses__():
        found |= _node_types(subclass)
    return frozenset(found)


# Every libcst node class: `type(x) in _NODE_TYPES` is much faster than `isinstance(x, cst.CSTNode)`,
# an ABC check.
_NODE_TYPES = _node_types(cst.CSTNode)


def iter_children(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """The node's children that carry code (no whitespace / punctuation), in source order."""
    for name in _walked_fields(type(node)):
        value = getattr(node, name)
        kind = type(value)
        if kind in _NODE_TYPES:
            yield value
        elif kind is tuple or kind is list:
            for item in value:
                if type(item) in _NODE_TYPES:
                    yield item


def walk(node: cst.CSTNode) -> Iterator[cst.CSTNode]:
    """Pre-order traversal of ``node`` and its code-carrying descendants."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        children = list(iter_children(current))
        children.reverse()
        stack.extend(children)


def dotted_name(expr: cst.BaseExpression | None) -> str | None:
    """``a.b.c`` for a chain of Name / Attribute nodes, else None."""
    if type(expr) is cst.Name:
        return expr.value
    parts: list[str] = []
    while type(expr) is cst.Attribute:
        parts.append(expr.attr.value)
        expr = expr.value
    if type(expr) is cst.Name:
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


LOOP_TYPES = (cst.For, cst.While)

CONDITIONAL_TYPES = (cst.If, cst.Else, cst.Try, cst.TryStar, cst.ExceptHandler, cst.ExceptStarHandler,
                     cst.Match, cst.For, cst.While)

NAME_OR_ATTRIBUTE = frozenset({cst.Name, cst.Attribute})


def last_part(name: str | None) -> str:
    """``c`` for ``a.b.c``; "" for None."""
    return name.rsplit(".", 1)[-1] if name else ""


def dotted_names_in(node: cst.CSTNode) -> Iterator[str]:
    """Every maximal Name / Attribute chain in ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        name = dotted_name(current) if type(current) in NAME_OR_ATTRIBUTE else None
        if name is not None:
            yield name
            continue
        stack.extend(iter_children(current))


def names_in(node: cst.CSTNode) -> set[str]:
    """Every identifier (``Name`` node) under ``node``."""
    out: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) is cst.Name:
            out.add(current.value)
        stack.extend(iter_children(current))
    return out


def nodes_of_types(node: cst.CSTNode, types: frozenset[type]) -> Iterator[cst.CSTNode]:
    """The nodes under ``node`` (itself included) of one of the concrete ``types``, in no set order."""
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) in types:
            yield current
        stack.extend(iter_children(current))


def chain_text(expr: cst.CSTNode) -> str:
    """The attribute names along a chain of attributes, calls and subscripts, without its root
    (``grad.data`` for ``p.grad.data[0]``, ``grad`` for ``f(x).grad``)."""
    parts = []
    while isinstance(expr, (cst.Attribute, cst.Call, cst.Subscript)):
        if isinstance(expr, cst.Attribute):
            parts.append(expr.attr.value)
            expr = expr.value
        elif isinstance(expr, cst.Call):
            expr = expr.func
        else:
            expr = expr.value
    return ".".join(reversed(parts))


def call_arg(call: cst.Call, keyword: str, position: int) -> cst.BaseExpression | None:
    """The argument passed as ``keyword=`` or at ``position`` (0-based, positional only)."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == keyword:
            return a.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if any(a.star for a in call.args):
        return None
    return positional[position].value if len(positional) > position else None


def is_true(expr: cst.BaseExpression) -> bool:
    """Whether ``expr`` is the name ``True``."""
    return isinstance(expr, cst.Name) and expr.value == "True"


# ---- literals ------------------------------------------------------------------------------------


def int_literal(expr: cst.BaseExpression | None) -> int | None:
    """The value of an integer literal, a negated one included (``3``, ``-1``, ``0x10``, ``1_000``)."""
    negative = isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus)
    if negative:
        expr = expr.expression
    if not isinstance(expr, cst.Integer):
        return None
    try:
        value = int(expr.value.replace("_", ""), 0)
    except ValueError:
        return None
    return -value if negative else value


def number_literal(expr: cst.BaseExpression | None) -> float | None:
    """The value of an int or float literal, a negated one included; None for anything else."""
    negative = isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus)
    if negative:
        expr = expr.expression
    if isinstance(expr, cst.Integer):
        integer = int_literal(expr)
        value = float(integer) if integer is not None else None
    elif isinstance(expr, cst.Float):
        try:
            value = float(expr.value.replace("_", ""))
        except ValueError:
            value = None
    else:
        return None
    return -value if negative and value is not None else value


def string_literal(expr: cst.BaseExpression | None) -> str | None:
    """The text of a plain string literal (not bytes, not an f-string)."""
    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None


def modulo_in(test: cst.BaseExpression) -> cst.BinaryOperation | None:
    """The first ``a % k`` in an `if` test (``i % k == 0``, ``(i + 1) % k == 0 or last``, ``not i % k``)."""
    stack = [test]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.BinaryOperation) and isinstance(current.operator, cst.Modulo):
            return current
        if isinstance(current, (cst.Comparison, cst.BooleanOperation, cst.UnaryOperation, cst.ComparisonTarget)):
            stack.extend(reversed(list(iter_children(current))))
    return None


# ---- statements and blocks -------------------------------------------------------------------------


def statement_of_call(program: "ProgramModel", call: cst.CSTNode) -> cst.SimpleStatementLine | None:
    """The statement line when ``call`` is the whole of a one-statement line (``opt.zero_grad()``)."""
    expr = program.parent(call)
    if not isinstance(expr, cst.Expr) or expr.value is not call:
        return None
    line = program.parent(expr)
    if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
        return line
    return None


def block_of(program: "ProgramModel", stmt: cst.CSTNode) -> cst.CSTNode | None:
    """The block holding a statement (IndentedBlock or Module), or None for one-line bodies."""
    parent = program.parent(stmt)
    return parent if isinstance(parent, (cst.IndentedBlock, cst.Module)) else None


def top_statement_in(program: "ProgramModel", node: cst.CSTNode, block: cst.CSTNode) -> cst.CSTNode | None:
    """The statement of ``block`` (its direct child) that holds ``node``."""
    current = node
    while current is not None:
        parent = program.parent(current)
        if parent is block:
            return current
        current = parent
    return None


def enclosing_loop(program: "ProgramModel", node: cst.CSTNode) -> cst.For | cst.While | None:
    """The innermost ``for`` / ``while`` around ``node`` in its own code (None past a ``def`` or ``lambda``)."""
    for ancestor in program.ancestors(node):
        if isinstance(ancestor, LOOP_TYPES):
            return ancestor
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return None
    return None


def loop_body_block(loop: cst.CSTNode) -> cst.IndentedBlock | None:
    """The indented, non-empty body of a loop (or any compound statement); None for a one-line body."""
    body = getattr(loop, "body", None)
    return body if isinstance(body, cst.IndentedBlock) and body.body else None


def loop_header(loop: cst.CSTNode) -> tuple[cst.CSTNode, cst.CSTNode]:
    """(start, end) nodes to report a loop on: its header, not its whole body."""
    if isinstance(loop, cst.For):
        return loop.target, loop.iter
    if isinstance(loop, cst.While):
        return loop.test, loop.test
    return loop, loop


def indent_of(program: "ProgramModel", stmt: cst.CSTNode) -> str:
    """The indentation (whitespace) of a statement, from its enclosing blocks."""
    parts = []
    for ancestor in program.ancestors(stmt):
        if isinstance(ancestor, cst.IndentedBlock):
            parts.append(ancestor.indent if ancestor.indent is not None else program.module.default_indent)
    return "".join(reversed(parts))


def first_import_block_end(program: "ProgramModel") -> cst.CSTNode | None:
    """The last statement of the module's leading block of imports / docstring, or None."""
    last = None
    for stmt in program.module.body:
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            isinstance(s, (cst.Import, cst.ImportFrom)) or (isinstance(s, cst.Expr) and isinstance(s.value, (cst.SimpleString, cst.ConcatenatedString)))
            for s in stmt.body
        ):
            last = stmt
            continue
        break
    return last
