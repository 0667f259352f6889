"""Activation provenance, the part of the dataflow the SAN6xx rules ask: what a tensor expression is the
output of — ``softmax``, ``log_softmax``, ``sigmoid`` or a layer producing raw logits (``Linear`` / ``Conv``) —
through names, helpers that return it, tuple unpacking of a ``forward``'s returns, and models whose last layer
is one of those. :class:`ActivationFlow` is a part of :class:`~.dataflow.Dataflow` (which it relies on for
``definitions``, ``reaching``, ``module_of`` and ``last_layer``); everything answers ``None`` when it cannot tell.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import libcst as cst

from .model import Binding, ProgramModel
from .syntax import dotted_name, iter_children
from .torch_api import (
    ACTIVATION_KEEPING_METHODS,
    ACTIVATION_METHODS,
    FUNCTIONAL_ACTIVATIONS,
)

MAX_DEPTH = 12  # how many names, calls and layers deep the dataflow follows a value


@dataclass(frozen=True)
class Activation:
    """What a tensor expression is the output of. ``call`` is the softmax / sigmoid call itself when it
    is visible in this module (``F.softmax(x, 1)``), ``source`` its input; both None for a model output."""

    kind: str
    call: cst.Call | None = None
    source: cst.BaseExpression | None = None
    program: ProgramModel | None = None
    model: bool = False  # the output of a model (its last layer, its forward), not of a call written here


class ActivationFlow:
    """The activation questions of :class:`~.dataflow.Dataflow` (a part of it, not used alone)."""

    program: ProgramModel

    def activation(self, expr: cst.BaseExpression | None, depth: int = 0) -> Activation | None:
        """What ``expr`` is the output of (softmax, log_softmax, sigmoid, raw logits), else None."""
        if expr is None or depth > MAX_DEPTH:
            return None
        if isinstance(expr, cst.Call):
            return self._call_activation(expr, depth)
        if dotted_name(expr) is not None and not dotted_name(expr).startswith("self."):
            defs = self.definitions(expr, depth)
            if not defs:
                return self._unpacked_activation(expr, depth) if isinstance(expr, cst.Name) else None
            acts = [flow.activation(value, depth + 1) if value is not expr else None for flow, value in defs]
            if any(a is None for a in acts) or len({a.kind for a in acts}) != 1:
                return None
            return acts[0] if len(acts) == 1 else Activation(acts[0].kind, model=all(a.model for a in acts))
        return None

    def _call_activation(self, call: cst.Call, depth: int) -> Activation | None:
        program = self.program
        qual = program.call_name(call)
        func = call.func
        if qual in FUNCTIONAL_ACTIVATIONS:
            source = _first_arg(call, "input")
            return Activation(FUNCTIONAL_ACTIVATIONS[qual], call, source, program)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver_name = dotted_name(func.value)
            is_module_path = receiver_name is not None and receiver_name.split(".")[0] in program.imports
            if method in ACTIVATION_METHODS and not is_module_path:
                return Activation(ACTIVATION_METHODS[method], call, func.value, program)
            if method in ACTIVATION_KEEPING_METHODS and not is_module_path:
                inner = self.activation(func.value, depth + 1)
                return Activation(inner.kind, model=inner.model) if inner is not None else None
        if isinstance(func, cst.Attribute) and func.attr.value == "forward" and dotted_name(func.value) is not None:
            func = func.value  # `model.forward(x)` computes what `model(x)` does
            qual = program.qualname(func)
        if isinstance(func, cst.Call):
            # `nn.Softmax(dim=1)(x)`
            ref = self.module_of_value(func, depth + 1)
            if ref is not None:
                kind = self.last_layer(ref, depth + 1)
                return Activation(kind, model=True) if kind is not None else None
            return None
        if dotted_name(func) is None or (qual is not None and qual.split(".")[0] in ("torch", "numpy", "np")):
            return None
        refs = self.module_of(func, depth + 1)
        if not refs:
            helper = self._helper(func)
            kind = self._returned(helper, depth + 1) if helper is not None else None
            return Activation(kind) if kind is not None else None
        kinds = {self.last_layer(ref, depth + 1) for ref in refs}
        if len(kinds) != 1 or None in kinds:
            return None
        kind = kinds.pop()
        return Activation(kind, model=True) if kind is not None else None

    def _helper(self, func: cst.BaseExpression) -> cst.FunctionDef | None:
        """The module-level function of this module that ``func`` names (``predict`` in ``predict(m, x)``)."""
        if not isinstance(func, cst.Name) or func.value in self.program.imports:
            return None
        info = self.program.functions.get(func.value)
        if info is None or info.class_name is not None or info.decorators:
            return None
        return info.node if self.program.parent(info.node) is self.program.module else None

    def _returned(self, function: cst.FunctionDef, depth: int, index: int | None = None, size: int = 0) -> str | None:
        """The activation every ``return`` of ``function`` gives (its ``index``-th element when the returns are
        tuples of ``size``), else None."""
        kinds = set()
        for node in function_nodes(function):
            if isinstance(node, cst.Yield):
                return None
            if not isinstance(node, cst.Return):
                continue
            value = node.value
            if index is not None:
                if not isinstance(value, cst.Tuple) or len(value.elements) != size \
                        or any(isinstance(e, cst.StarredElement) for e in value.elements):
                    return None
                value = value.elements[index].value
            act = self.activation(value, depth + 1) if value is not None else None
            if act is None:
                return None
            kinds.add(act.kind)
        return kinds.pop() if len(kinds) == 1 else None

    def _unpacked_activation(self, expr: cst.Name, depth: int) -> Activation | None:
        """``probs, logits = model(x)`` / ``= helper(x)``: the element of what the forward (or the helper)
        returns, when every return is a tuple of that size."""
        binding = self.reaching(expr.value, expr)
        if not isinstance(binding, Binding) or binding.value is not None or not isinstance(binding.node, cst.Assign):
            return None
        targets = binding.node.targets
        value = binding.node.value
        if len(targets) != 1 or not isinstance(targets[0].target, (cst.Tuple, cst.List)) or not isinstance(value, cst.Call):
            return None
        elements = targets[0].target.elements
        if any(isinstance(e, cst.StarredElement) for e in elements):
            return None
        index = next((i for i, e in enumerate(elements) if isinstance(e.value, cst.Name) and e.value.value == expr.value), None)
        if index is None or depth > MAX_DEPTH:
            return None
        func = value.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        if dotted_name(func) is None:
            return None
        functions = []
        refs = self.module_of(func, depth + 1)
        if refs:
            for ref in refs:
                info = ref.program.functions.get(f"{ref.classdef.name.value}.forward") if ref.classdef is not None else None
                if info is None:
                    return None
                functions.append((ref.program.cached(type(self)), info.node))
        else:
            helper = self._helper(func)
            if helper is None:
                return None
            functions.append((self, helper))
        kinds = {flow._returned(node, depth + 1, index, len(elements)) for flow, node in functions}
        if len(kinds) != 1 or None in kinds:
            return None
        return Activation(kinds.pop(), model=bool(refs))


def function_nodes(function: cst.FunctionDef) -> Iterator[cst.CSTNode]:
    """The nodes of a function body, not descending into nested functions, classes or lambdas."""
    stack = list(iter_children(function.body))
    stack.reverse()
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        children = list(iter_children(node))
        children.reverse()
        stack.extend(children)


def returned_values(function: cst.FunctionDef) -> list[cst.BaseExpression] | None:
    """The expressions every ``return`` of ``function`` gives (not counting nested functions); None for a
    generator, a coroutine that awaits, a bare ``return`` or no ``return`` at all."""
    returns = []
    for node in function_nodes(function):
        if isinstance(node, (cst.Yield, cst.Await)):
            return None
        if isinstance(node, cst.Return):
            if node.value is None:
                return None
            returns.append(node.value)
    return returns or None


def _first_arg(call: cst.Call, keyword: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            return arg.value
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    return None
