"""The loss of an accumulation loop on its way to ``backward()``, for SAN105: is it divided, and when it is
divided exactly once, by what — and is that divisor evidently another count than the gate's ``k``."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from ..dataflow import Dataflow
from ..lookups import int_value, kind_of_name
from ..model import ProgramModel
from ..name_guesses import counts_accumulation_steps, looks_like_loss_function
from ..syntax import dotted_name, enclosing_loop, iter_children, last_part, walk
from ..torch_api import LOSS, is_functional_loss

_SCALING_OPERATORS = (cst.Divide, cst.Multiply)


@dataclass(frozen=True)
class Division:
    """The one division of the loss before ``backward()``: ``divisor`` divides it; ``of_sum`` when what it
    divides is a sum of losses (``(a + b) / 2`` averages losses, which says nothing about accumulation)."""

    divisor: cst.BaseExpression
    of_sum: bool


def has_scaling(expr: cst.CSTNode) -> bool:
    """Any ``*`` / ``/`` inside ``expr``."""
    return any(_is_scaling(n) for n in walk(expr))


def _is_scaling(node: cst.CSTNode) -> bool:
    return isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _SCALING_OPERATORS)


def evidently_raw_loss(program: ProgramModel, value: cst.BaseExpression) -> bool:
    """A criterion call, a functional loss, a model output's ``.loss``, or a sum of those."""
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Add, cst.Subtract)):
        return evidently_raw_loss(program, value.left) and evidently_raw_loss(program, value.right)
    if isinstance(value, cst.Attribute) and value.attr.value == "loss":
        return True
    if isinstance(value, cst.Subscript) and isinstance(value.value, cst.Name):
        return False
    if isinstance(value, cst.Call):
        name = dotted_name(value.func)
        if name is None:
            return False
        if kind_of_name(program, name) == LOSS:
            return True
        if is_functional_loss(program.qualname(value.func) or ""):
            return True
        if "." not in name and name in program.functions:
            return False
        return looks_like_loss_function(name)
    return False


def _is_sum(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Add, cst.Subtract))


def single_division(program: ProgramModel, dataflow: Dataflow, loop: cst.CSTNode, site: cst.CSTNode,
                    loss: cst.BaseExpression) -> Division | None:
    """The division when ``loss`` (the argument of the ``backward()`` at ``site``) is an evidently raw loss
    divided exactly once, by a name, an attribute or an integer, before that ``backward()`` in ``loop``'s own
    body: ``(loss / d).backward()``, ``loss = loss / d``, ``loss /= d``, ``loss = criterion(...) / d``.
    None when there is no division, more than one scaling, or anything the analysis does not follow."""
    if isinstance(loss, cst.BinaryOperation):
        if not isinstance(loss.operator, cst.Divide) or has_scaling(loss.left) or has_scaling(loss.right):
            return None
        name = dotted_name(loss.left)
        if name is None:
            return _division(loss.right, [loss.left] if evidently_raw_loss(program, loss.left) else None)
        bindings = _bindings(program, loop, name)
        if bindings is None or any(kind != "assign" for kind, _, _ in bindings):
            return None
        if not all(dataflow.precedes(node, site) for _, node, _ in bindings):
            return None
        return _division(loss.right, [value for _, _, value in bindings] or None, program)
    name = dotted_name(loss)
    bindings = _bindings(program, loop, name) if name is not None else None
    if not bindings:
        return None
    scalings = [b for b in bindings if b[0] == "divide" or b[0] == "assign" and has_scaling(b[2])]
    if len(scalings) != 1 or any(kind not in ("assign", "divide") for kind, _, _ in bindings):
        return None
    kind, node, value = scalings[0]
    if not dataflow.precedes(node, site):
        return None
    raw = [b for b in bindings if b is not scalings[0]]
    if not all(dataflow.precedes(other, node) for _, other, _ in raw):
        return None
    if kind == "divide":
        return _division(value, [v for _, _, v in raw] or None, program)
    if not (isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Divide)):
        return None
    if has_scaling(value.left) or has_scaling(value.right):
        return None
    if dotted_name(value.left) == name:  # loss = loss / d
        return _division(value.right, [v for _, _, v in raw] or None, program)
    if raw:  # loss = criterion(...) / d, and other bindings of `loss` too
        return None
    return _division(value.right, [value.left], program)


def _division(divisor: cst.BaseExpression, dividends: list[cst.BaseExpression] | None,
              program: ProgramModel | None = None) -> Division | None:
    if not dividends or not isinstance(divisor, (cst.Name, cst.Attribute, cst.Integer)):
        return None
    if program is not None and not all(evidently_raw_loss(program, d) and not has_scaling(d) for d in dividends):
        return None
    return Division(divisor, any(_is_sum(d) for d in dividends))


_Bound = tuple[str, cst.CSTNode, "cst.BaseExpression | None"]


def _bindings(program: ProgramModel, loop: cst.CSTNode, name: str) -> list[_Bound] | None:
    """Every statement in ``loop`` that binds ``name``: ("assign", statement, value), ("divide", statement,
    divisor) for ``name /= d``, ("other", ...) for anything else; None when one is not in ``loop``'s own body
    (an inner loop, a nested function) or binds ``name`` inside a tuple, a ``for`` or a ``with`` target."""
    found: list[_Bound] = []
    for node in walk(loop.body):
        if isinstance(node, cst.Assign):
            if not any(_mentions(t.target, name) for t in node.targets):
                continue
            if len(node.targets) != 1 or dotted_name(node.targets[0].target) != name:
                return None
            found.append(("assign", node, node.value))
        elif isinstance(node, cst.AnnAssign) and _mentions(node.target, name):
            if node.value is None:
                continue
            found.append(("assign" if dotted_name(node.target) == name else "other", node, node.value))
        elif isinstance(node, cst.AugAssign) and dotted_name(node.target) == name:
            found.append(("divide" if isinstance(node.operator, cst.DivideAssign) else "other", node, node.value))
        elif isinstance(node, (cst.For, cst.NamedExpr, cst.AsName, cst.Param)) and _mentions(
                getattr(node, "target", None) or getattr(node, "name", None), name):
            return None
        else:
            continue
        if enclosing_loop(program, node) is not loop:
            return None
    return found


def _mentions(target: cst.CSTNode | None, name: str) -> bool:
    return target is not None and any(
        dotted_name(n) == name for n in walk(target) if isinstance(n, (cst.Name, cst.Attribute)))


def another_count(program: ProgramModel, loop: cst.CSTNode, k: cst.BaseExpression, division: Division) -> bool:
    """True when the divisor is evidently a different accumulation count than the gate's ``k``: an integer
    literal other than the constant ``k`` holds (``% 4`` and ``/ 8``; never for an average of losses,
    ``(a + b) / 2``), or a name of an accumulation count other than ``k``'s, itself one (``args.grad_accum``
    and ``args.accum_steps``), both on the same object, or both module-level names bound outside ``loop``,
    which no assignment relates to each other."""
    d = division.divisor
    k_value, d_value = int_value(program, k), int_value(program, d)
    if k_value is not None and k_value == d_value:
        return False
    if isinstance(d, cst.Integer):
        constant = isinstance(k, (cst.Integer, cst.Name))  # not `args.k`: an argparse default may be overridden
        return constant and k_value is not None and d_value is not None and k_value > 1 and d_value > 1 \
            and not division.of_sum
    if isinstance(k, cst.Integer):
        return False
    k_name, d_name = dotted_name(k), dotted_name(d)
    if k_name is None or d_name is None or last_part(k_name) == last_part(d_name):
        return False
    if not (counts_accumulation_steps(k_name) and counts_accumulation_steps(d_name)):
        return False
    k_base, d_base = k_name.rpartition(".")[0], d_name.rpartition(".")[0]
    if k_base != d_base:
        return False
    if not k_base and not (_bound_outside(program, loop, k_name) and _bound_outside(program, loop, d_name)):
        return False
    return not _related(program, k_name, d_name)


def _bound_outside(program: ProgramModel, loop: cst.CSTNode, name: str) -> bool:
    """``name`` has bindings, none of them inside ``loop``, and is no parameter of a function around it."""
    bindings = program.bindings.get(name, [])
    inside = {id(n) for n in walk(loop)}
    if not bindings or any(id(b.node) in inside for b in bindings):
        return False
    for ancestor in program.ancestors(loop):
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)) and any(
                p.name.value == name for p in _params(ancestor)):
            return False
    return True


def _params(function: cst.FunctionDef | cst.Lambda) -> list[cst.Param]:
    p = function.params
    star = [p.star_arg] if isinstance(p.star_arg, cst.Param) else []
    return [*p.posonly_params, *p.params, *star, *p.kwonly_params, *([p.star_kwarg] if p.star_kwarg else [])]


def _related(program: ProgramModel, a: str, b: str) -> bool:
    """Some assignment chain relates ``a`` and ``b``: the names one's bindings mention (and theirs in turn)
    meet the other's, or an object of the other's (``accum = grad_accum``, ``args.accum = args.grad_accum``)."""
    near_a, near_b = _reachable(program, a), _reachable(program, b)
    return any(x == y or x.startswith(y + ".") or y.startswith(x + ".") for x in near_a for y in near_b)


def _reachable(program: ProgramModel, name: str) -> set[str]:
    seen, todo = {name}, [name]
    while todo and len(seen) < 64:
        for binding in program.bindings.get(todo.pop(), []):
            for found in _names_in(binding.value):
                if found not in seen:
                    seen.add(found)
                    todo.append(found)
    return seen


def _names_in(value: cst.CSTNode | None) -> list[str]:
    """The longest dotted names in ``value`` (``args.grad_accum``, not also ``args``)."""
    if value is None:
        return []
    name = dotted_name(value) if isinstance(value, (cst.Name, cst.Attribute)) else None
    if name is not None:
        return [name]
    return [found for child in iter_children(value) for found in _names_in(child)]
