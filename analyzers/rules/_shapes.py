"""Tensor shapes, for the SAN3xx rules: sizes unpacked from ``x.shape``."""

from __future__ import annotations

import libcst as cst

from ..dataflow import Dataflow
from ..model import Binding
from ..syntax import dotted_name


def shape_unpack(flow: Dataflow, name: str, use: cst.CSTNode) -> tuple[str, int, int, Binding] | None:
    """``n, c, h, w = x.shape`` (or ``x.size()``) reaching ``use``: (receiver, index, ndim, binding)."""
    binding = flow.reaching(name, use)
    if not isinstance(binding, Binding) or binding.value is not None or not isinstance(binding.node, cst.Assign):
        return None
    assign = binding.node
    if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, (cst.Tuple, cst.List)):
        return None
    elements = assign.targets[0].target.elements
    if any(isinstance(e, cst.StarredElement) for e in elements):
        return None
    receiver = _shape_receiver(assign.value)
    if receiver is None:
        return None
    for index, element in enumerate(elements):
        if isinstance(element.value, cst.Name) and element.value.value == name:
            return receiver, index, len(elements), binding
    return None


def _shape_receiver(value: cst.BaseExpression) -> str | None:
    """``x`` for ``x.shape`` / ``x.size()``."""
    if isinstance(value, cst.Attribute) and value.attr.value == "shape":
        return dotted_name(value.value)
    if isinstance(value, cst.Call) and not value.args and isinstance(value.func, cst.Attribute) \
            and value.func.attr.value == "size":
        return dotted_name(value.func.value)
    return None
