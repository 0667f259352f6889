"""Where training effects can happen, in execution order, and whether gradients are on there.

The effect sites of a scope (the module's own code, a function body) are its calls and the statements
that clear ``.grad`` (``p.grad = None``, ``del p.grad``), each with its context: the compound statements
around it from the scope down, and its ``no_grad`` state (``with torch.no_grad():``, a
``@torch.no_grad()`` function, ``torch.set_grad_enabled(flag)``). :mod:`~torchsanity.analyzers.flow`
turns sites into effects. Found once for all scopes, without libcst visitors or metadata.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import libcst as cst

from .model import ProgramModel
from .syntax import is_true, iter_children
from .torch_api import ENABLE_GRAD_CONTEXTS, NO_GRAD_CONTEXTS, SET_GRAD_CONTEXTS

# Context nodes recorded for effects (relative to their scope).
_CTX_TYPES = (
    cst.For,
    cst.While,
    cst.If,
    cst.Else,
    cst.With,
    cst.Try,
    cst.TryStar,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
    cst.Match,
)

_CTX_SET = frozenset(_CTX_TYPES)
_ASSIGN_TYPES = frozenset({cst.Assign, cst.AugAssign, cst.AnnAssign})
_CLEARING_TYPES = _ASSIGN_TYPES | {cst.Del}  # statements that may clear `.grad`

_NESTED_SCOPE_TYPES = frozenset({cst.FunctionDef, cst.ClassDef, cst.Lambda})  # code with effects of its own
# Fields of statements and blocks that hold statements.
_BLOCK_FIELDS = ("body", "handlers", "orelse", "finalbody", "cases")

# Where a node sits, as far as effects care: (the scope whose own code holds it, its context nodes from the
# scope down, its no_grad state, the innermost call around it); None for code of no scope.
_Context = tuple[cst.CSTNode, tuple[cst.CSTNode, ...], "bool | None", "cst.Call | None"]
# An effect site (a call, or a statement clearing `.grad`) with its context nodes and no_grad state.
Site = tuple[cst.CSTNode, tuple[cst.CSTNode, ...], "bool | None"]


def sites_by_scope(program: ProgramModel, calls: list[cst.Call], root: cst.CSTNode | None = None) -> dict[int, list[Site]]:
    """The effect sites of every scope (by id of its Module / FunctionDef), in execution order: ``calls``
    (those of ``program.calls`` that may be effects) and the statements that clear `.grad`. With ``root`` (a
    top-level statement), only the scopes in it and the module's own code in it, from ``calls`` in it."""
    root = program.module if root is None else root
    inner, clearings = _statement_contexts(program, root)
    kept = {id(call) for call in calls}
    contexts: dict[int, _Context] = {}
    by_scope: dict[int, list[cst.CSTNode]] = {}
    for call in calls:
        context = _call_context(program, call, inner, kept)
        if context is not None:
            contexts[id(call)] = context
            by_scope.setdefault(id(context[0]), []).append(call)
    sites = {key: _execution_order(nodes, contexts) for key, nodes in by_scope.items()}
    # Scopes with statements that clear `.grad` are walked in full, to place those among the calls.
    clearing_scopes: dict[int, cst.CSTNode] = {}
    for statement, context in clearings:
        contexts[id(statement)] = context
        clearing_scopes[id(context[0])] = context[0]
    for key, scope in clearing_scopes.items():
        nodes = _walk_sites(scope.body if type(scope) is cst.FunctionDef else root)
        sites[key] = [(node, *contexts[id(node)][1:3]) for node in nodes if id(node) in contexts]
    return sites


def _statement_contexts(program: ProgramModel, root: cst.CSTNode) -> tuple[dict[int, _Context | None],
                                                      list[tuple[cst.CSTNode, _Context]]]:
    """The context of the code directly in each statement line, compound statement, handler or case (by
    id), and the statements that clear gradients (``p.grad = None``, ``del p.grad``) with their context."""
    inner: dict[int, _Context | None] = {}
    clearings: list[tuple[cst.CSTNode, _Context]] = []
    stack: list[tuple[cst.CSTNode, _Context | None]] = [(root, (program.module, (), False, None))]
    while stack:
        node, context = stack.pop()
        kind = type(node)
        if kind is cst.SimpleStatementLine or kind is cst.SimpleStatementSuite:
            inner[id(node)] = context
            if context is not None:
                for statement in node.body:
                    if type(statement) in _CLEARING_TYPES and _cleared_grads(statement):
                        clearings.append((statement, context))
            continue
        if kind is cst.Module:
            context = (node, (), False, None)
        elif kind is cst.FunctionDef:
            inner[id(node)] = None  # decorators, parameters: no scope's own code
            stack.append((node.body, (node, (), decorated_no_grad(program, node), None)))
            continue
        elif kind is cst.ClassDef:
            context = None  # a class body is no scope's own code
        elif kind in _CTX_SET and context is not None:
            scope, ctx, nograd, _ = context
            context = (scope, ctx + (node,), with_no_grad(program, node, nograd) if kind is cst.With else nograd, None)
        inner[id(node)] = context
        for name in _block_fields(kind):
            value = getattr(node, name)
            if type(value) is tuple or type(value) is list:
                stack.extend([(child, context) for child in value])
            elif value is not None:
                stack.append((value, context))
    return inner, clearings


def _call_context(program: ProgramModel, call: cst.Call, inner: dict[int, _Context | None],
                  kept: set[int]) -> _Context | None:
    """The context of the statement (handler, case) a call is in, with the innermost ``kept`` call around
    it; None in a lambda, a decorator, a class body, ..."""
    parents = program.parents
    around = None
    node = call
    while True:
        parent = parents.get(id(node))
        if parent is None:
            return None
        if id(parent) in inner:
            break
        kind = type(parent)
        if kind is cst.Lambda:
            return None
        if kind is cst.Call and around is None and id(parent) in kept:
            around = parent
        node = parent
    context = inner[id(parent)]
    if context is None:
        return None
    return context[0], context[1], context[2], around


def _execution_order(calls: list[cst.CSTNode], contexts: dict[int, _Context]) -> list[Site]:
    """A scope's calls in walk order (``program.calls``) → execution order: each after the calls inside it."""
    sites: list[Site] = []
    pending: list[tuple[cst.CSTNode, _Context]] = []  # calls whose arguments are still being evaluated
    for call in calls:
        context = contexts[id(call)]
        while pending and pending[-1][0] is not context[3]:
            done, done_context = pending.pop()
            sites.append((done, done_context[1], done_context[2]))
        pending.append((call, context))
    while pending:
        done, done_context = pending.pop()
        sites.append((done, done_context[1], done_context[2]))
    return sites


def _walk_sites(root: cst.CSTNode) -> list[cst.CSTNode]:
    """The calls and `.grad`-clearing statements (once per cleared target) of a scope's own code under
    ``root``, in execution order (children first, in walk order)."""
    sites: list[cst.CSTNode] = []
    stack: list[tuple[cst.CSTNode, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        kind = type(node)
        if children_done:
            if kind is cst.Call:
                sites.append(node)
            elif kind in _CLEARING_TYPES:
                sites.extend([node] * _cleared_grads(node))
        elif kind not in _NESTED_SCOPE_TYPES:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(list(iter_children(node))))
    return sites


def _cleared_grads(statement: cst.CSTNode) -> int:
    """How many ``x.grad`` an assignment or ``del`` statement clears."""
    targets = [t.target for t in statement.targets] if type(statement) is cst.Assign else (statement.target,)
    count = 0
    for target in targets:
        if type(target) is cst.Attribute and target.attr.value == "grad":
            count += 1
    return count


@lru_cache(maxsize=None)
def _block_fields(node_type: type) -> tuple[str, ...]:
    """The fields of a statement or block that hold statements, blocks, handlers or cases."""
    names = {f.name for f in dataclasses.fields(node_type)}
    return tuple(name for name in _BLOCK_FIELDS if name in names)


def with_no_grad(program: ProgramModel, node: cst.With, inherited: bool | None) -> bool | None:
    """The no_grad state inside ``with`` statement ``node``: True (gradients off), False (on) or None (it
    depends on a flag), given the state ``inherited`` from around it."""
    result = inherited
    for item in node.items:
        expr = item.item
        if isinstance(expr, cst.Call):
            qual = program.call_name(expr)
            if qual in NO_GRAD_CONTEXTS:
                if qual.endswith("inference_mode") and expr.args and not is_true(expr.args[0].value):
                    result = None if result is not True else True
                    continue
                return True
            if qual in SET_GRAD_CONTEXTS:
                value = expr.args[0].value if expr.args else None
                if isinstance(value, cst.Name) and value.value == "False":
                    return True
                if isinstance(value, cst.Name) and value.value == "True":
                    result = False
                else:
                    result = None
            elif qual in ENABLE_GRAD_CONTEXTS:
                result = False
        elif program.qualname(expr) in NO_GRAD_CONTEXTS:
            return True
    return result


def decorated_no_grad(program: ProgramModel, func: cst.FunctionDef) -> bool:
    """Whether ``func`` is decorated with ``@torch.no_grad()`` / ``@torch.inference_mode()``."""
    for dec in func.decorators:
        expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
        if program.qualname(expr) in NO_GRAD_CONTEXTS:
            return True
    return False
