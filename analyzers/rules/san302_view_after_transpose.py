from __future__ import annotations

import libcst as cst

from ..dataflow import dataflow
from ..flow import calls_by_callee
from ..model import ProgramModel, dotted_name
from ..rule import Invalid, NodeEdit, NodeFix, Rule

_TRANSPOSING_METHODS = frozenset({"transpose", "permute", "t", "swapaxes", "swapdims", "movedim", "moveaxis"})
_TRANSPOSING_FUNCTIONS = frozenset({"torch.transpose", "torch.permute", "torch.t", "torch.swapaxes",
                                    "torch.swapdims", "torch.movedim", "torch.moveaxis"})
_TRANSPOSING_ATTRIBUTES = frozenset({"T", "mT", "H", "mH"})


class ViewAfterTranspose(Rule):
    """`.view(...)` on the result of `.transpose()` / `.permute()` / `.t()` / `.T` / `.mT` (directly, or
    through a name bound to it) without `.contiguous()` in between."""

    code = "SAN302"
    name = "view-after-transpose"
    message = "view() on a transposed / permuted tensor: it is not contiguous; use reshape() (or .contiguous().view())"
    why = """
        `transpose` / `permute` only change strides; the result is not contiguous, and `view` cannot merge
        dimensions whose memory is not laid out in order. It raises "view size is not compatible with input
        tensor's size and stride" at run time — often only on the code path that runs late (validation,
        multi-GPU, a different batch size).
    """
    example = """
        y = y.transpose(1, 2).view(B, T, C)   # SAN302
    """
    fix_doc = """
        Use `reshape()`, which returns a view when possible and copies otherwise, or call `.contiguous()`
        before `view()`.
    """
    VALID = [
        "y = y.transpose(1, 2).contiguous().view(B, T, C)\n",
        "y = y.transpose(1, 2).reshape(B, T, C)\n",
        "z = x.permute(0, 2, 1)\nz = z.contiguous()\nw = z.view(-1)\n",
        # identity permutation / same-dim transpose: still contiguous
        "y = x.permute(0, 1, 2).view(-1)\ny2 = x.transpose(1, 1).view(-1)\n",
        # a dtype view is allowed on any tensor
        "import torch\nbits = w.t().view(torch.int16)\n",
        "import numpy as np\na = arr.T.view(np.float32)\n",
        # rebound since the transpose
        "x = x.transpose(0, 1)\nx = make(x)\ny = x.view(-1)\n",
        # only splits a dim of a 3-d transposed tensor (torch's multi-head attention does this)
        "q = q.view(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)\nq = q.view(bsz, num_heads, tgt_len, head_dim)\n",
    ]
    INVALID = [
        Invalid("y = att.transpose(1, 2).view(B, T, C)\n", line=1, fixed="y = att.transpose(1, 2).reshape(B, T, C)\n"),
        Invalid(
            "def f(x, n):\n    x = x.permute(0, 2, 3, 1)\n    return x.view(n, -1)\n",
            line=3,
            fixed="def f(x, n):\n    x = x.permute(0, 2, 3, 1)\n    return x.reshape(n, -1)\n",
        ),
        Invalid("out = w.T.view(-1)\n", line=1, fixed="out = w.T.reshape(-1)\n"),
        Invalid("import torch\nflat = torch.transpose(h, 0, 1).view(b, -1)\n", line=2,
                fixed="import torch\nflat = torch.transpose(h, 0, 1).reshape(b, -1)\n"),
    ]

    def check(self, model: ProgramModel):
        flow = None
        for call in calls_by_callee(model)[1].get("view", ()):
            func = call.func
            if not call.args:
                continue
            if _dtype_view(model, call):
                continue
            receiver = func.value
            sizes = _size_count(call)
            if isinstance(receiver, cst.Call) or isinstance(receiver, cst.Attribute) and receiver.attr.value in _TRANSPOSING_ATTRIBUTES:
                if not _transposing(model, receiver):
                    continue
                if flow is None:
                    flow = dataflow(model)
                ndim = _ndim(model, flow, receiver)
                if ndim is not None and sizes is not None and sizes > ndim:
                    continue  # only splits dims: legal on a non-contiguous tensor
            else:
                name = dotted_name(receiver)
                if name is None or name.split(".")[0] in model.imports:
                    continue
                if flow is None:
                    flow = dataflow(model)
                defs = flow.definitions(receiver)
                if not defs or not all(f.model is model and _transposing(model, v) for f, v in defs):
                    continue
                ndims = {_ndim(model, flow, v) for _, v in defs}
                if None not in ndims and sizes is not None and sizes > max(ndims):
                    continue  # only splits dims: legal on a non-contiguous tensor
            yield self.finding(call, fix=NodeFix("Use reshape()", (NodeEdit("replace", func.attr, "reshape"),)))


def _transposing(model: ProgramModel, expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Attribute):
        if expr.attr.value not in _TRANSPOSING_ATTRIBUTES:
            return False
        head = dotted_name(expr.value)
        return head is None or head.split(".")[0] not in model.imports
    if not isinstance(expr, cst.Call):
        return False
    qual = model.call_name(expr)
    args = [a for a in expr.args if not a.star]
    if qual in _TRANSPOSING_FUNCTIONS:
        name = qual.rsplit(".", 1)[-1]
        dims = args[1:]
    elif isinstance(expr.func, cst.Attribute) and expr.func.attr.value in _TRANSPOSING_METHODS:
        head = dotted_name(expr.func.value)
        if head is not None and head.split(".")[0] in model.imports:
            return False
        name = expr.func.attr.value
        dims = args
    else:
        return False
    if any(a.star for a in expr.args):
        return True
    ints = [_literal(a.value) for a in dims]
    if name == "permute":
        if len(ints) == 1 and isinstance(dims[0].value, (cst.Tuple, cst.List)):
            ints = [_literal(e.value) for e in dims[0].value.elements]
        if ints and all(i is not None for i in ints) and ints == sorted(ints) and all(i >= 0 for i in ints):
            return False  # identity
    if name in ("transpose", "swapaxes", "swapdims", "movedim", "moveaxis") and len(ints) == 2 \
            and ints[0] is not None and ints[0] == ints[1]:
        return False
    return True


def _size_count(call: cst.Call) -> int | None:
    """How many sizes a ``view(...)`` asks for (None with ``*args``)."""
    if any(a.star for a in call.args):
        return None
    if len(call.args) == 1 and isinstance(call.args[0].value, (cst.Tuple, cst.List)):
        elements = call.args[0].value.elements
        return None if any(isinstance(e, cst.StarredElement) for e in elements) else len(elements)
    return len(call.args)


def _ndim(model: ProgramModel, flow, expr: cst.BaseExpression, depth: int = 0) -> int | None:
    """The number of dims of a transposed / viewed tensor when the code says it."""
    if depth > 4 or not isinstance(expr, cst.Call):
        if depth <= 4 and isinstance(expr, (cst.Name, cst.Attribute)) and dotted_name(expr) is not None:
            defs = flow.definitions(expr)
            if defs and len(defs) == 1 and defs[0][0] is flow:
                return _ndim(model, flow, defs[0][1], depth + 1)
        return None
    func = expr.func
    if not isinstance(func, cst.Attribute):
        return None
    method = func.attr.value
    if method in ("view", "reshape"):
        return _size_count(expr)
    if method == "permute":
        return _size_count(expr)
    if method == "t" and not expr.args:
        return 2
    if method in ("transpose", "swapaxes", "swapdims", "contiguous", "float", "to"):
        return _ndim(model, flow, func.value, depth + 1)
    return None


def _literal(expr: cst.BaseExpression) -> int | None:
    if isinstance(expr, cst.Integer):
        return int(expr.value.replace("_", ""), 0)
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus) and isinstance(expr.expression, cst.Integer):
        return -int(expr.expression.value.replace("_", ""), 0)
    return None


def _dtype_view(model: ProgramModel, call: cst.Call) -> bool:
    """``x.view(torch.float16)`` / ``a.view(np.uint8)`` / ``x.view(dtype=...)`` reinterpret the bytes."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "dtype":
            return True
        value = arg.value
        if isinstance(value, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
            return True
        if isinstance(value, cst.Attribute):
            qual = model.qualname(value) or ""
            if qual.split(".")[0] in ("torch", "numpy", "np") and qual.rsplit(".", 1)[-1][:1].islower() \
                    and qual.rsplit(".", 1)[-1] not in ("shape",):
                return True
            if qual.split(".")[0] in ("numpy", "np"):
                return True
        if isinstance(value, cst.Name) and ("dtype" in value.value.lower() or value.value.lower().endswith("type")):
            return True
    return False
