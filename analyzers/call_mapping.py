"""How a call site maps onto the function it calls, for inlining a helper's effects: its parameters bound to the
call's arguments, the classes ``self`` may be (a class and its bases in this file), and the ``m.train() if flag
else m.eval()`` idiom."""

from __future__ import annotations

import libcst as cst

from .model import ProgramModel
from .syntax import dotted_name


def calls_self_method(func_name: str) -> bool:
    """``self.method``: which function it calls depends on the class of ``self``."""
    head, _, rest = func_name.partition(".")
    return head == "self" and rest != "" and "." not in rest


def mode_by_flag(program, call: cst.Call, recv_name: str | None) -> bool:
    """``m.train() if training else m.eval()``: one branch of a conditional expression whose other branch sets
    the other mode of the same module, i.e. ``m.train(training)``."""
    parent = program.parent(call)
    if recv_name is None or not isinstance(parent, cst.IfExp):
        return False
    other = parent.orelse if parent.body is call else parent.body
    wanted = "eval" if call.func.attr.value == "train" else "train"
    return (isinstance(other, cst.Call) and not other.args and isinstance(other.func, cst.Attribute)
            and other.func.attr.value == wanted and dotted_name(other.func.value) == recv_name)


def class_chain(program: ProgramModel, class_name: str) -> list[str]:
    chain, seen = [class_name], {class_name}
    i = 0
    while i < len(chain) and len(chain) < 10:
        node = program.classes.get(chain[i])
        i += 1
        if node is None:
            continue
        for base in node.bases:
            name = dotted_name(base.value)
            if name and name in program.classes and name not in seen:
                seen.add(name)
                chain.append(name)
    return chain


def param_mapping(func: cst.FunctionDef, call: cst.Call, bound_self: bool) -> dict[str, str | None]:
    params = [p.name.value for p in func.params.posonly_params] + [p.name.value for p in func.params.params]
    if bound_self and params:
        params = params[1:]
    mapping: dict[str, str | None] = {}
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for name, arg in zip(params, positional):
        mapping[name] = dotted_name(arg.value)
    for arg in call.args:
        if arg.keyword is not None:
            mapping[arg.keyword.value] = dotted_name(arg.value)
    for p in list(func.params.params) + list(func.params.kwonly_params) + list(func.params.posonly_params):
        mapping.setdefault(p.name.value, None)
    if bound_self:
        mapping.pop("self", None)
    return mapping


def map_target(target: str | None, mapping: dict[str, str | None]) -> str | None:
    if target is None:
        return None
    head, dot, rest = target.partition(".")
    if head in mapping:
        mapped = mapping[head]
        if mapped is None:
            return None
        return mapped + dot + rest
    return target
