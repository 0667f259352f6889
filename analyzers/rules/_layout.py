"""Tensor layouts, for SAN302: which transpose / permute a tensor keeps the strides of.

A transposed tensor stays non-contiguous through what PyTorch computes elementwise: its output takes the
strides of its (first) tensor input, so ``eps * std + mu`` with ``mu`` and ``std`` permuted alike is permuted
the same way, as are ``torch.exp(0.5 * v)``, ``torch.randn_like(v)``, ``v.detach()``, ``v.float()`` and
``v.clone()``. :func:`permuted_source` follows a tensor through such operations, through names, through the
``return`` of a helper or ``self.method(...)`` (binding its parameters to that call's arguments), and answers
the transposing expression, or None when it cannot tell. :func:`permuted_at_call_sites` judges a parameter at
each call site of its function on its own.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator
from dataclasses import dataclass

import libcst as cst

from ..activation_flow import MAX_DEPTH, returned_values
from ..call_mapping import class_chain
from ..lookups import calls_by_callee
from ..model import ProgramModel
from ..syntax import dotted_name, int_literal

_TRANSPOSING_METHODS = frozenset({"transpose", "permute", "t", "swapaxes", "swapdims", "movedim", "moveaxis"})
_TRANSPOSING_FUNCTIONS = frozenset({"torch.transpose", "torch.permute", "torch.t", "torch.swapaxes",
                                    "torch.swapdims", "torch.movedim", "torch.moveaxis"})
TRANSPOSING_ATTRIBUTES = frozenset({"T", "mT", "H", "mH"})

# Methods whose result has the receiver's strides (the arguments are dtypes, devices or scalars).
_KEEP_LAYOUT_METHODS = frozenset({
    "detach", "clone", "float", "double", "half", "bfloat16", "bool", "long", "int", "to", "cpu", "cuda",
    "exp", "log", "sqrt", "rsqrt", "sigmoid", "tanh", "abs", "neg", "relu", "square", "reciprocal",
})
# Methods computed elementwise with a second tensor (or a scalar).
_BINARY_METHODS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "add", "sub", "mul", "div", "pow"})
# Functions of one tensor whose result has its strides (``*_like`` use ``torch.preserve_format``).
_KEEP_LAYOUT_FUNCTIONS = frozenset({
    "torch.exp", "torch.log", "torch.sqrt", "torch.rsqrt", "torch.sigmoid", "torch.tanh", "torch.abs",
    "torch.neg", "torch.relu", "torch.square", "torch.reciprocal",
    "torch.nn.functional.relu", "torch.nn.functional.sigmoid", "torch.nn.functional.tanh",
    "torch.randn_like", "torch.rand_like", "torch.zeros_like", "torch.ones_like", "torch.empty_like",
})
_BINARY_FUNCTIONS = frozenset({"torch.add", "torch.sub", "torch.mul", "torch.div", "torch.pow"})
_ARITHMETIC = (cst.Add, cst.Subtract, cst.Multiply, cst.Divide, cst.FloorDivide, cst.Power, cst.Modulo)


def transposing(program: ProgramModel, expr: cst.BaseExpression) -> bool:
    """``expr`` is a transpose / permute / ``.T`` of something (not the identity permutation)."""
    if isinstance(expr, cst.Attribute):
        if expr.attr.value not in TRANSPOSING_ATTRIBUTES:
            return False
        head = dotted_name(expr.value)
        return head is None or head.split(".")[0] not in program.imports
    if not isinstance(expr, cst.Call):
        return False
    qual = program.call_name(expr)
    args = [a for a in expr.args if not a.star]
    if qual in _TRANSPOSING_FUNCTIONS:
        name = qual.rsplit(".", 1)[-1]
        dims = args[1:]
    elif isinstance(expr.func, cst.Attribute) and expr.func.attr.value in _TRANSPOSING_METHODS:
        head = dotted_name(expr.func.value)
        if head is not None and head.split(".")[0] in program.imports:
            return False
        name = expr.func.attr.value
        dims = args
    else:
        return False
    if any(a.star for a in expr.args):
        return True
    ints = [int_literal(a.value) for a in dims]
    if name == "permute":
        if len(ints) == 1 and isinstance(dims[0].value, (cst.Tuple, cst.List)):
            ints = [int_literal(e.value) for e in dims[0].value.elements]
        if ints and all(i is not None for i in ints) and ints == sorted(ints) and all(i >= 0 for i in ints):
            return False  # identity
    if name in ("transpose", "swapaxes", "swapdims", "movedim", "moveaxis") and len(ints) == 2 \
            and ints[0] is not None and ints[0] == ints[1]:
        return False
    return True


def permutation(program: ProgramModel, flow, expr: cst.BaseExpression) -> list[int] | None:
    """The order of the input dims in a ``permute`` / ``transpose`` result, when the code spells it out."""
    if not isinstance(expr, cst.Call) or not isinstance(expr.func, cst.Attribute) or any(a.star for a in expr.args):
        return None
    method = expr.func.attr.value
    values = [a.value for a in expr.args]
    if method == "permute" and len(values) == 1 and isinstance(values[0], (cst.Tuple, cst.List)):
        values = [e.value for e in values[0].elements]
    dims = [int_literal(v) for v in values]
    if None in dims:
        return None
    if method == "permute":
        return dims if sorted(dims) == list(range(len(dims))) else None
    if method in ("transpose", "swapaxes", "swapdims") and len(dims) == 2:
        count = ndim(program, flow, expr.func.value)
        if count is None or not all(-count <= d < count for d in dims):
            return None
        order = list(range(count))
        a, b = (d % count for d in dims)
        order[a], order[b] = order[b], order[a]
        return order
    return None


def size_count(call: cst.Call) -> int | None:
    """How many sizes a ``view(...)`` / ``permute(...)`` asks for (None with ``*args``)."""
    if any(a.star for a in call.args):
        return None
    if len(call.args) == 1 and isinstance(call.args[0].value, (cst.Tuple, cst.List)):
        elements = call.args[0].value.elements
        return None if any(isinstance(e, cst.StarredElement) for e in elements) else len(elements)
    return len(call.args)


def ndim(program: ProgramModel, flow, expr: cst.BaseExpression, depth: int = 0) -> int | None:
    """The number of dims of a transposed / viewed tensor when the code says it."""
    if depth > 4 or not isinstance(expr, cst.Call):
        if depth <= 4 and isinstance(expr, (cst.Name, cst.Attribute)) and dotted_name(expr) is not None:
            defs = flow.definitions(expr)
            if defs and len(defs) == 1 and defs[0][0] is flow:
                return ndim(program, flow, defs[0][1], depth + 1)
        return None
    func = expr.func
    if not isinstance(func, cst.Attribute):
        return None
    method = func.attr.value
    if method in ("view", "reshape", "permute"):
        return size_count(expr)
    if method == "t" and not expr.args:
        return 2
    if method in ("transpose", "swapaxes", "swapdims", "contiguous", "float", "to"):
        return ndim(program, flow, func.value, depth + 1)
    return None


@dataclass(frozen=True)
class _Frame:
    """A call being followed: the function entered, the call that entered it, and the caller's own frame."""

    function: cst.FunctionDef
    call: cst.Call
    bound_self: bool
    outer: _Frame | None


def permuted_source(program: ProgramModel, flow, expr: cst.BaseExpression,
                    frame: _Frame | None = None, depth: int = 0) -> cst.BaseExpression | None:
    """The transpose / permute whose strides ``expr`` provably has, else None. A parameter of the function
    holding ``expr`` is followed only inside a call being followed (``frame``)."""
    if depth > MAX_DEPTH:
        return None
    if transposing(program, expr):
        return expr
    if isinstance(expr, cst.Name):
        return _name_source(program, flow, expr, frame, depth)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
        return permuted_source(program, flow, expr.expression, frame, depth + 1)
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, _ARITHMETIC):
        return _same_source(program, flow, (expr.left, expr.right), frame, depth)
    if not isinstance(expr, cst.Call) or any(a.star for a in expr.args) \
            or any(a.keyword is not None and a.keyword.value in ("memory_format", "out") for a in expr.args):
        return None
    func = expr.func
    qual = program.call_name(expr)
    positional = [a.value for a in expr.args if a.keyword is None]
    if isinstance(func, cst.Attribute) and (qual is None or qual.split(".")[0] not in ("torch", "numpy", "np")):
        if func.attr.value in _KEEP_LAYOUT_METHODS:
            return permuted_source(program, flow, func.value, frame, depth + 1)
        if func.attr.value in _BINARY_METHODS and len(positional) == 1:
            return _same_source(program, flow, (func.value, positional[0]), frame, depth)
    if qual in _KEEP_LAYOUT_FUNCTIONS and len(positional) == 1:
        return permuted_source(program, flow, positional[0], frame, depth + 1)
    if qual in _BINARY_FUNCTIONS and len(positional) == 2:
        return _same_source(program, flow, positional, frame, depth)
    return _returned_source(program, flow, expr, frame, depth)


def permuted_at_call_sites(program: ProgramModel, flow,
                           name: cst.Name) -> Iterator[tuple[cst.BaseExpression, cst.Call]]:
    """``name`` is a parameter of the function holding it, not rebound before this use: for each call site
    of that function in this module (``self.method(...)`` from the same class, or ``helper(...)``) whose
    argument provably keeps a transpose's strides, that transposing expression and the call."""
    function = flow.scope(name)
    if function is None or not _unrebound_parameter(program, flow, name, function) or function.decorators:
        return
    class_name = flow.class_of(function)
    for call in _call_sites(program, flow, function, class_name):
        arg = _argument(flow, function, call, name.value, bound_self=class_name is not None)
        if arg is None:
            continue
        source = permuted_source(program, flow, arg, None, 1)
        if source is not None:
            yield source, call


def _name_source(program, flow, name: cst.Name, frame: _Frame | None, depth: int):
    binding = flow.reaching(name.value, name)
    if binding is not None:
        if getattr(binding, "value", None) is None or not isinstance(binding.node, (cst.Assign, cst.AnnAssign)):
            return None
        return permuted_source(program, flow, binding.value, frame, depth + 1)
    function = flow.scope(name)
    if frame is None or function is not frame.function or not _unrebound_parameter(program, flow, name, function):
        return None
    arg = _argument(flow, function, frame.call, name.value, frame.bound_self)
    return None if arg is None else permuted_source(program, flow, arg, frame.outer, depth + 1)


def _same_source(program, flow, operands, frame: _Frame | None, depth: int):
    """The common layout of the operands of an elementwise operation: every tensor operand keeps the same
    permutation; number literals broadcast and do not count. None when one is unknown."""
    found, keys = None, set()
    for operand in operands:
        if _number(operand):
            continue
        source = permuted_source(program, flow, operand, frame, depth + 1)
        if source is None:
            return None
        keys.add(_layout_key(program, flow, source))
        found = found or source
    return found if len(keys) == 1 else None


def _number(expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, (cst.Minus, cst.Plus)):
        expr = expr.expression
    return isinstance(expr, (cst.Integer, cst.Float))


def _returned_source(program, flow, call: cst.Call, frame: _Frame | None, depth: int):
    """``self.method(...)`` / ``helper(...)`` of this module: the layout every ``return`` of it gives, its
    parameters bound to this call's arguments."""
    function, bound_self = _callee(program, flow, call)
    if function is None or any(f is function for f in _frames(frame)):
        return None
    inner = _Frame(function, call, bound_self, frame)
    returns = returned_values(function)
    if returns is None or any(_number(value) for value in returns):
        return None
    return _same_source(program, flow, returns, inner, depth)


def _frames(frame: _Frame | None) -> Iterator[cst.FunctionDef]:
    while frame is not None:
        yield frame.function
        frame = frame.outer


def _callee(program: ProgramModel, flow, call: cst.Call) -> tuple[cst.FunctionDef | None, bool]:
    func = call.func
    if isinstance(func, cst.Attribute) and isinstance(func.value, cst.Name) and func.value.value == "self":
        class_name = flow.class_of(flow.scope(call))
        info = _method(program, class_name, func.attr.value) if class_name else None
        if info is None or info.decorators or _overridden(program, class_name, func.attr.value):
            return None, True
        return info.node, True
    if isinstance(func, cst.Name) and func.value not in program.imports:
        info = program.functions.get(func.value)
        if info is not None and info.class_name is None and not info.decorators \
                and isinstance(program.parent(info.node), cst.Module):
            return info.node, False
    return None, False


def _method(program: ProgramModel, class_name: str, method: str):
    """The function ``self.method`` names in ``class_name``: its own, or the first of its bases here."""
    for name in class_chain(program, class_name):
        info = program.functions.get(f"{name}.{method}")
        if info is not None:
            return info
    return None


def _overridden(program: ProgramModel, class_name: str, method: str) -> bool:
    """A subclass in this module defines ``method`` again: ``self.method`` may be that one."""
    return any(name != class_name and class_name in class_chain(program, name)
               and f"{name}.{method}" in program.functions for name in program.classes)


def _call_sites(program: ProgramModel, flow, function: cst.FunctionDef, class_name: str | None) -> list[cst.Call]:
    """``self.method(...)`` in the class of ``function`` or a subclass here (when none overrides it), or
    ``helper(...)`` for a module-level function; never from the function itself."""
    method = function.name.value
    if class_name is not None:
        if _overridden(program, class_name, method):
            return []
        sites = []
        for call in calls_by_callee(program)[1].get(method, ()):
            caller = flow.scope(call)
            if not isinstance(call.func.value, cst.Name) or call.func.value.value != "self" or caller is function:
                continue
            caller_class = flow.class_of(caller)
            info = _method(program, caller_class, method) if caller_class else None
            if info is not None and info.node is function:
                sites.append(call)
        return sites
    if not isinstance(program.parent(function), cst.Module):
        return []
    return [call for call in calls_by_callee(program)[0].get(method, ()) if flow.scope(call) is not function]


def _argument(flow, function: cst.FunctionDef, call: cst.Call, name: str,
              bound_self: bool) -> cst.BaseExpression | None:
    """The argument ``call`` passes for the parameter ``name`` (None with ``*args`` / ``**kwargs`` or when
    the default is used)."""
    params = function.params
    positional = [p.name.value for p in (*params.posonly_params, *params.params)]
    if bound_self:
        positional = positional[1:]
    if any(a.star for a in call.args):
        return None
    index = 0
    for arg in call.args:
        if arg.keyword is not None:
            if arg.keyword.value == name:
                return arg.value
            continue
        if index < len(positional) and positional[index] == name:
            return arg.value
        index += 1
    return None


def _unrebound_parameter(program: ProgramModel, flow, name: cst.Name, function: cst.FunctionDef) -> bool:
    """``name`` is a plain parameter of ``function`` and still holds the argument at this use: no binding of
    it in the function comes before the use (the statement holding the use aside), and the use is in no loop."""
    param = flow.params(function).get(name.value)
    p = function.params
    if param is None or param is p.star_arg or param is p.star_kwarg:
        return False
    for ancestor in program.ancestors(name):
        if ancestor is function:
            break
        if isinstance(ancestor, (cst.For, cst.While)):
            return False
    holding = {id(n) for n in program.ancestors(name)}
    for binding in program.bindings.get(name.value, ()):
        if flow.scope(binding.node) is function and id(binding.node) not in holding \
                and not flow.precedes(name, binding.node):
            return False
    return True


def _layout_key(program: ProgramModel, flow, source: cst.BaseExpression) -> Hashable:
    """Two sources with the same key give the same strides (same spelled-out permutation, or the same node)."""
    order = permutation(program, flow, source)
    return tuple(order) if order is not None else id(source)
