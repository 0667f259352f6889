"""What the names and calls of a program refer to: memoized lookups on the program model.

Each index here is built once per program (:meth:`ProgramModel.cached`) and shared by every rule: the
qualified name of each call, the function around a node, calls by callee, names by identifier, what
kind of object a dotted name holds, and the integer values of names and ``argparse`` defaults.
"""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from .model import STATEMENT_ONLY, FunctionInfo, ProgramModel
from .name_guesses import looks_like_loader, looks_like_model
from .syntax import dotted_name, int_literal, last_part, nodes_of_types
from .torch_api import DATALOADER, MODEL, TQDM_CALLS

_NAME = frozenset({cst.Name})


class _CallNames:
    """What each call of a module calls: ``dotted_name(call.func)`` and ``program.call_name(call)`` (which
    depends on the dotted name and the imports only), by id of the call, and the calls with their qualified
    names in order. Found per top-level statement, kept while the module-level facts are the same."""

    def __init__(self, program: ProgramModel) -> None:
        self.dotted: dict[int, str | None] = {}
        self.qualified: dict[int, str | None] = {}
        self.named: list[tuple[cst.Call, str | None]] = []
        for dotted, qualified, named in program.per_statement_of(_statement_call_names, program.facts()):
            self.dotted.update(dotted)
            self.qualified.update(qualified)
            self.named.extend(named)


def _statement_call_names(program: ProgramModel, statement: cst.CSTNode):
    dotted: dict[int, str | None] = {}
    qualified: dict[int, str | None] = {}
    named: list[tuple[cst.Call, str | None]] = []
    resolved: dict[str | None, str | None] = {}
    for call in program.statement_calls(statement):
        name = dotted_name(call.func)
        if name not in resolved:
            resolved[name] = program.call_name(call)
        qual = resolved[name]
        dotted[id(call)] = name
        qualified[id(call)] = qual
        named.append((call, qual))
    return dotted, qualified, named


def _call_names(program: ProgramModel) -> _CallNames:
    return program.cached(_CallNames)


def named_calls(program: ProgramModel) -> list[tuple[cst.Call, str | None]]:
    """Every call of the module with its ``program.call_name``, in ``program.calls`` order (computed once)."""
    return _call_names(program).named


def call_name(program: ProgramModel, call: cst.Call) -> str | None:
    """``program.call_name(call)``, looked up for the module's own calls."""
    names = _call_names(program).qualified
    key = id(call)
    return names[key] if key in names else program.call_name(call)


def callee_name(program: ProgramModel, call: cst.Call) -> str | None:
    """``dotted_name(call.func)``, looked up for the module's own calls."""
    names = _call_names(program).dotted
    key = id(call)
    return names[key] if key in names else dotted_name(call.func)


def enclosing_function(program: ProgramModel, node: cst.CSTNode) -> cst.FunctionDef | None:
    """``program.enclosing_function(node)``, memoized for the node and the ancestors on the way up."""
    found = program.cached(_enclosing_functions)
    parents = program.parents
    path = []
    key = id(node)
    while key not in found:
        path.append(key)
        parent = parents.get(key)
        if parent is None or type(parent) is cst.FunctionDef:
            found[key] = parent
            break
        key = id(parent)
    function = found[key]
    for key in path:
        found[key] = function
    return function


def _enclosing_functions(program: ProgramModel) -> dict[int, cst.FunctionDef | None]:
    return {}


def calls_by_callee(program: ProgramModel) -> tuple[dict[str, list[cst.Call]], dict[str, list[cst.Call]]]:
    """The module's calls ``f(...)`` by ``f`` and ``x.m(...)`` by ``m``, in ``program.calls`` order (indexed once)."""
    return program.cached(_calls_by_callee)


def _calls_by_callee(program: ProgramModel) -> tuple[dict[str, list[cst.Call]], dict[str, list[cst.Call]]]:
    by_name: dict[str, list[cst.Call]] = {}
    by_method: dict[str, list[cst.Call]] = {}
    for names, methods in program.per_statement_of(_statement_calls_by_callee, STATEMENT_ONLY):
        for name, calls in names.items():
            by_name.setdefault(name, []).extend(calls)
        for method, calls in methods.items():
            by_method.setdefault(method, []).extend(calls)
    return by_name, by_method


def _statement_calls_by_callee(program: ProgramModel, statement: cst.CSTNode):
    by_name: dict[str, list[cst.Call]] = {}
    by_method: dict[str, list[cst.Call]] = {}
    for call in program.statement_calls(statement):
        func = call.func
        if type(func) is cst.Name:
            by_name.setdefault(func.value, []).append(call)
        elif type(func) is cst.Attribute:
            by_method.setdefault(func.attr.value, []).append(call)
    return by_name, by_method


def call_sites(program: ProgramModel, func: FunctionInfo) -> list[cst.Call]:
    """Calls of ``func`` in its module (plain calls, ``self.method(...)`` for methods)."""
    by_name, by_method = calls_by_callee(program)
    return list((by_name if func.class_name is None else by_method).get(func.node.name.value, ()))


def referenced_otherwise(program: ProgramModel, func: FunctionInfo, calls: list[cst.Call],
                         known: tuple[cst.Name, ...] = ()) -> bool:
    """Whether the function's name is used other than by calling it (passed as a callback), ``known`` uses apart."""
    call_funcs = {id(c.func) for c in calls} | {id(c.func.attr) for c in calls if isinstance(c.func, cst.Attribute)}
    call_funcs |= {id(name) for name in known}
    for node in names_by_value(program).get(func.node.name.value, ()):
        if id(node) not in call_funcs and node is not func.node.name:
            parent = program.parent(node)
            if isinstance(parent, cst.Attribute) and id(parent) in call_funcs:
                continue
            return True
    return False


def names_by_value(program: ProgramModel) -> dict[str, list[cst.Name]]:
    """Every ``Name`` node of the module by identifier (indexed once per program; each top-level statement is
    walked once per version of the text that changes it: :meth:`ProgramModel.per_statement`)."""
    return program.cached(_names_by_value)


def _names_by_value(program: ProgramModel) -> dict[str, list[cst.Name]]:
    index: dict[str, list[cst.Name]] = {}
    for names in program.per_statement(_statement_names):
        for value, nodes in names.items():
            index.setdefault(value, []).extend(nodes)
    return index


def _statement_names(statement: cst.CSTNode) -> dict[str, list[cst.Name]]:
    index: dict[str, list[cst.Name]] = {}
    for node in nodes_of_types(statement, _NAME):
        index.setdefault(node.value, []).append(node)
    return index


def kind_of_name(program: ProgramModel, name: str | None) -> str | None:
    """``program.kind_of`` for a dotted name (without building an expression)."""
    if not name:
        return None
    for binding in reversed(program.bindings.get(name, [])):
        if binding.kind is not None:
            return binding.kind
        if binding.value is not None:
            kind = program.kind_of(binding.value)
            if kind is not None:
                return kind
    return None


def is_model_name(program: ProgramModel, name: str | None) -> bool:
    """Whether ``name`` holds a network: bound to one, or named like one (:func:`looks_like_model`)."""
    if not name:
        return False
    if kind_of_name(program, name) == MODEL:
        return True
    return looks_like_model(name)


def same_object(a: str | None, b: str | None) -> bool:
    """``model`` / ``model.module`` / ``self.model`` refer to the same network."""
    if not a or not b or a == "self" or b == "self":
        return a == b and a is not None
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def module_alias(program: ProgramModel, module: str) -> str | None:
    """The local name a module is imported as (``np`` for numpy), if any."""
    for local, qual in program.imports.items():
        if qual == module and local.isidentifier():
            return local
    return None


def bound_to(program: ProgramModel, name: str, suffixes: tuple[str, ...]) -> bool:
    """Whether ``name`` is bound to a call of a class or function whose name is one of ``suffixes``."""
    for b in program.bindings.get(name, []):
        if isinstance(b.value, cst.Call) and last_part(program.call_name(b.value) or "") in suffixes:
            return True
    return False


def iter_loader_names(program: ProgramModel, expr: cst.BaseExpression) -> Iterator[str]:
    """Dotted names a `for` loop iterates over, through enumerate / tqdm / zip / iter wrappers."""
    stack = [expr]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Call):
            stack.extend(a.value for a in current.args)
            continue
        name = dotted_name(current)
        if name is not None:
            yield name
        elif isinstance(current, cst.Subscript):
            base = dotted_name(current.value)
            key = current.slice[0].slice if current.slice else None
            if base and isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString):
                yield f"{base}.{key.value.evaluated_value}"


def is_batch_loop(program: ProgramModel, loop: cst.CSTNode) -> bool:
    """Whether ``loop`` iterates over a DataLoader (bound to one, or named like one)."""
    if not isinstance(loop, cst.For):
        return False
    for name in iter_loader_names(program, loop.iter):
        if kind_of_name(program, name) == DATALOADER:
            return True
        if looks_like_loader(name):
            return True
    return False


def int_value(program: ProgramModel, expr: cst.BaseExpression | None, _depth: int = 0) -> int | None:
    """The integer an expression evidently holds: a literal, a name bound once to a literal, or an
    ``args.x`` whose argparse ``--x`` has an integer default."""
    if expr is None or _depth > 4:
        return None
    if isinstance(expr, cst.Integer):
        return int_literal(expr)
    name = dotted_name(expr)
    if name is None:
        return None
    if "." not in name:
        values = {int_value(program, b.value, _depth + 1) for b in program.bindings.get(name, [])}
        if len(values) == 1:
            return values.pop()
        return None
    # args.epochs: look for parser.add_argument("--epochs", default=N)
    attr = last_part(name)
    found: set[int | None] = set()
    for call in program.calls:
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_argument" and call.args:
            flags = [a.value.evaluated_value for a in call.args if a.keyword is None
                     and isinstance(a.value, cst.SimpleString)]
            dest = next((a.value for a in call.args if a.keyword and a.keyword.value == "dest"), None)
            names = {f.lstrip("-").replace("-", "_") for f in flags if isinstance(f, str)}
            if isinstance(dest, cst.SimpleString):
                names = {dest.evaluated_value}
            if attr in names:
                default = next((a.value for a in call.args if a.keyword and a.keyword.value == "default"), None)
                found.add(int_value(program, default, _depth + 1) if default is not None else None)
    if len(found) == 1:
        return found.pop()
    return None


def range_stop(program: ProgramModel, loop: cst.CSTNode) -> tuple[bool, int | None]:
    """(is a `for _ in range(...)` loop, its resolved stop) — the epoch count of an epoch loop."""
    if not isinstance(loop, cst.For) or not isinstance(loop.iter, cst.Call):
        return False, None
    call = loop.iter
    inner = call
    if program.call_name(call) in TQDM_CALLS and call.args and isinstance(call.args[0].value, cst.Call):
        inner = call.args[0].value
    if program.call_name(inner) != "range" or not inner.args or len(inner.args) > 2:
        return False, None
    if any(a.keyword is not None or a.star for a in inner.args):
        return True, None
    return True, int_value(program, inner.args[-1].value)
