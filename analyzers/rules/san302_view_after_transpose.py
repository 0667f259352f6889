from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import calls_by_callee
from ..model import ProgramModel
from ..rule import SAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name, int_literal
from ._shapes import shape_unpack

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
    known_problems = """
        Non-contiguity is followed only through direct chains and names bound to the transposed tensor; a
        tensor made contiguous by an operation the rule does not know (most elementwise operations return
        contiguous results) may be reported. A view is taken as legal when its sizes map onto dims that stay
        adjacent and in order after the permute; each name, attribute or literal size is read as one dim, a
        product as several, and a `-1` as the dims left over, so a single name that stands for a product
        (`n_tokens = h * w`) can hide a bug or cause a report.
    """
    fix_safety = """
        Safe: `reshape` returns the same values as `contiguous().view(...)`, and where `view` would have
        worked it returns a view, as `view` did. The differential test in the repository runs both on random
        tensors.
    """
    VALID = [
        Valid("""
            y = y.transpose(1, 2).contiguous().view(B, T, C)
        """),
        Valid("""
            y = y.transpose(1, 2).reshape(B, T, C)
        """),
        Valid("""
            z = x.permute(0, 2, 1)
            z = z.contiguous()
            w = z.view(-1)
        """),
        # identity permutation / same-dim transpose: still contiguous
        Valid("""
            y = x.permute(0, 1, 2).view(-1)
            y2 = x.transpose(1, 1).view(-1)
        """),
        # a dtype view is allowed on any tensor
        Valid("""
            import torch
            bits = w.t().view(torch.int16)
        """),
        Valid("""
            import numpy as np
            a = arr.T.view(np.float32)
        """),
        # rebound since the transpose
        Valid("""
            x = x.transpose(0, 1)
            x = make(x)
            y = x.view(-1)
        """),
        # only splits a dim of a 3-d transposed tensor (torch's multi-head attention does this)
        Valid("""
            q = q.view(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
            q = q.view(bsz, num_heads, tgt_len, head_dim)
        """),
        # -1 stands for h * w: the merged dims stay adjacent and in order after the permute
        Valid("""
            def f(x):
                b, c, h, w = x.shape
                return x.permute(0, 2, 3, 1).view(b, -1, c)
        """),
        # (K, D).t() is (D, K): view(-1, K) asks for the same shape, detach() in between changes nothing
        Valid("""
            def f(queue):
                K, D = queue.shape
                return queue.detach().t().view(-1, K)
        """),
    ]
    INVALID = [
        Invalid("""
            y = att.transpose(1, 2).view(B, T, C)
        """, line=1, fixed="""
            y = att.transpose(1, 2).reshape(B, T, C)
        """),
        Invalid(
            """
            def f(x, n):
                x = x.permute(0, 2, 3, 1)
                return x.view(n, -1)
            """,
            line=3,
            fixed="""
            def f(x, n):
                x = x.permute(0, 2, 3, 1)
                return x.reshape(n, -1)
            """,
        ),
        Invalid("""
            out = w.T.view(-1)
        """, line=1, fixed="""
            out = w.T.reshape(-1)
        """),
        Invalid("""
            import torch
            flat = torch.transpose(h, 0, 1).view(b, -1)
        """, line=2,
                fixed="""
                import torch
                flat = torch.transpose(h, 0, 1).reshape(b, -1)
                """),
        # merging the transposed dims is the bug
        Invalid(
            """
            def f(x):
                b, n, d = x.shape
                return x.transpose(1, 2).view(b, -1)
            """,
            line=3,
            fixed="""
            def f(x):
                b, n, d = x.shape
                return x.transpose(1, 2).reshape(b, -1)
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        for call in calls_by_callee(program)[1].get("view", ()):
            func = call.func
            if not call.args:
                continue
            if _dtype_view(program, call):
                continue
            receiver = func.value
            sizes = _size_count(call)
            if isinstance(receiver, cst.Call) or isinstance(receiver, cst.Attribute) and receiver.attr.value in _TRANSPOSING_ATTRIBUTES:
                if not _transposing(program, receiver):
                    continue
                if flow is None:
                    flow = ctx.dataflow
                ndim = _ndim(program, flow, receiver)
                if ndim is not None and sizes is not None and sizes > ndim:
                    continue  # only splits dims: legal on a non-contiguous tensor
                if _merges_adjacent_dims(program, flow, receiver, call) or _keeps_matrix_shape(flow, receiver, call):
                    continue
            else:
                receiver = _sliced(receiver)
                name = dotted_name(receiver)
                if name is None or name.split(".")[0] in program.imports:
                    continue
                if flow is None:
                    flow = ctx.dataflow
                defs = flow.definitions(receiver)
                if defs and len(defs) == 1 and defs[0][0] is flow:
                    defs = [(flow, _same_layout_source(program, flow, defs[0][1]))]
                if not defs or not all(f.program is program and _transposing(program, v) for f, v in defs):
                    continue
                ndims = {_ndim(program, flow, v) for _, v in defs}
                if None not in ndims and sizes is not None and sizes > max(ndims):
                    continue  # only splits dims: legal on a non-contiguous tensor
                if all(_merges_adjacent_dims(program, flow, v, call) or _keeps_matrix_shape(flow, v, call) for _, v in defs):
                    continue
            yield self.finding(call, fix=NodeFix("Use reshape()", (Replace(func.attr, "reshape"),), SAFE))


def _transposing(program: ProgramModel, expr: cst.BaseExpression) -> bool:
    if isinstance(expr, cst.Attribute):
        if expr.attr.value not in _TRANSPOSING_ATTRIBUTES:
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


_SAME_LAYOUT_METHODS = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "float", "double", "half", "bool", "long", "int"})


def _sliced(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``correct`` for ``correct[:k]``: slicing keeps every dim and the strides' order."""
    if isinstance(expr, cst.Subscript) and all(isinstance(e.slice, cst.Slice) for e in expr.slice):
        return expr.value
    return expr


def _same_layout_source(program: ProgramModel, flow, expr: cst.BaseExpression, depth: int = 0) -> cst.BaseExpression:
    """The transposed tensor an elementwise comparison / dtype cast was computed from
    (``pred.t().eq(target)`` keeps ``pred.t()``'s strides), else ``expr``."""
    if depth > 3 or not isinstance(expr, cst.Call) or not isinstance(expr.func, cst.Attribute) \
            or expr.func.attr.value not in _SAME_LAYOUT_METHODS:
        return expr
    source = expr.func.value
    if _transposing(program, source):
        return source
    if dotted_name(source) is not None and dotted_name(source).split(".")[0] not in program.imports:
        defs = flow.definitions(source)
        if defs and len(defs) == 1 and defs[0][0] is flow:
            inner = _same_layout_source(program, flow, defs[0][1], depth + 1)
            if _transposing(program, inner):
                return inner
    return expr


def _permutation(program: ProgramModel, flow, expr: cst.BaseExpression) -> list[int] | None:
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
        ndim = _ndim(program, flow, expr.func.value)
        if ndim is None or not all(-ndim <= d < ndim for d in dims):
            return None
        order = list(range(ndim))
        a, b = (d % ndim for d in dims)
        order[a], order[b] = order[b], order[a]
        return order
    return None


def _factor_groups(call: cst.Call) -> list[int] | None:
    """How many input dims each size of ``view(...)`` covers, when every size is a name, a number or a product
    of them (``h * w`` covers two; a literal 1 adds a new dim and covers none; ``-1`` gives -1); None with
    ``*args``."""
    values = [a.value for a in call.args]
    if any(a.star or a.keyword for a in call.args):
        return None
    if len(values) == 1 and isinstance(values[0], (cst.Tuple, cst.List)):
        if any(isinstance(e, cst.StarredElement) for e in values[0].elements):
            return None
        values = [e.value for e in values[0].elements]
    groups = []
    for value in values:
        if int_literal(value) == 1:
            groups.append(0)
            continue
        if int_literal(value) == -1:
            groups.append(-1)
            continue
        if int_literal(value) is not None and int_literal(value) > 1:
            groups.append(1)  # a literal size on its own is read as one dim (a channel count such as 64)
            continue
        count = _factors(value)
        if count is None:
            return None
        groups.append(count)
    return groups


def _factors(expr: cst.BaseExpression) -> int | None:
    """How many dim sizes a product of sizes multiplies; None for anything else (``2 * c``, ``n // 2``)."""
    if isinstance(expr, cst.BinaryOperation):
        if not isinstance(expr.operator, cst.Multiply):
            return None
        left, right = _factors(expr.left), _factors(expr.right)
        return None if left is None or right is None else left + right
    if isinstance(expr, (cst.Name, cst.Attribute, cst.Subscript, cst.Call)):
        return 1
    return None


def _merges_adjacent_dims(program: ProgramModel, flow, transposed: cst.BaseExpression, call: cst.Call) -> bool:
    """True when the sizes of ``view(...)`` map one factor to one dim of the permuted tensor and every merged
    group is a run of dims that are also adjacent, in order, in memory (``x.permute(0, 2, 3, 1).view(b, h * w, c)``):
    such a view is legal on a non-contiguous tensor."""
    order = _permutation(program, flow, transposed)
    groups = _factor_groups(call)
    if order is None or groups is None or groups.count(-1) > 1:
        return False
    if -1 in groups:  # -1 covers the dims the other sizes leave over
        rest = len(order) - sum(g for g in groups if g != -1)
        if rest < 1:
            return False
        groups[groups.index(-1)] = rest
    if sum(groups) != len(order):
        return False
    start = 0
    for size in groups:
        run = order[start:start + size]
        if any(b != a + 1 for a, b in zip(run, run[1:])):
            return False
        start += size
    return True


def _keeps_matrix_shape(flow, transposed: cst.BaseExpression, call: cst.Call) -> bool:
    """``m.T.view(-1, m.shape[0])`` (sizes read from ``m``, directly or through a name): the view asks for the
    transposed matrix's own shape, so it merges nothing."""
    if isinstance(transposed, cst.Attribute) and transposed.attr.value == "T":
        matrix = dotted_name(_layout_source(transposed.value))
    elif isinstance(transposed, cst.Call) and not transposed.args and isinstance(transposed.func, cst.Attribute) \
            and transposed.func.attr.value == "t":
        matrix = dotted_name(_layout_source(transposed.func.value))
    else:
        return False
    if matrix is None or len(call.args) != 2 or any(a.star or a.keyword for a in call.args):
        return False
    first, second = (_matrix_dim(flow, matrix, a.value) for a in call.args)
    return (first, second) in ((-1, 0), (1, -1), (1, 0))


_KEEPS_SHAPE_METHODS = frozenset({"detach", "contiguous", "clone", "float", "double", "half", "cpu", "cuda"})


def _layout_source(expr: cst.BaseExpression) -> cst.BaseExpression:
    """``queue`` for ``queue.detach()`` / ``queue.float().detach()``: calls that keep the shape."""
    while isinstance(expr, cst.Call) and not expr.args and isinstance(expr.func, cst.Attribute) \
            and expr.func.attr.value in _KEEPS_SHAPE_METHODS:
        expr = expr.func.value
    return expr


def _matrix_dim(flow, matrix: str, size: cst.BaseExpression) -> int | None:
    """-1 for ``-1``; i for ``matrix.shape[i]`` / ``matrix.size(i)`` or a name bound only to one of them."""
    if int_literal(size) == -1:
        return -1
    if isinstance(size, cst.Name):
        unpacked = shape_unpack(flow, size.value, size)
        if unpacked is not None:
            owner, index, ndim, _ = unpacked
            return index if owner == matrix and ndim == 2 else None
        defs = flow.definitions(size)
        if not defs or len(defs) != 1 or defs[0][1] is size:
            return None
        size = defs[0][1]
    if isinstance(size, cst.Subscript) and isinstance(size.value, cst.Attribute) and size.value.attr.value == "shape" \
            and len(size.slice) == 1 and isinstance(size.slice[0].slice, cst.Index):
        owner, index = size.value.value, size.slice[0].slice.value
    elif isinstance(size, cst.Call) and isinstance(size.func, cst.Attribute) and size.func.attr.value == "size" \
            and len(size.args) == 1:
        owner, index = size.func.value, size.args[0].value
    else:
        return None
    dim = int_literal(index)
    return dim if dotted_name(owner) == matrix and dim in (0, 1) else None


def _size_count(call: cst.Call) -> int | None:
    """How many sizes a ``view(...)`` asks for (None with ``*args``)."""
    if any(a.star for a in call.args):
        return None
    if len(call.args) == 1 and isinstance(call.args[0].value, (cst.Tuple, cst.List)):
        elements = call.args[0].value.elements
        return None if any(isinstance(e, cst.StarredElement) for e in elements) else len(elements)
    return len(call.args)


def _ndim(program: ProgramModel, flow, expr: cst.BaseExpression, depth: int = 0) -> int | None:
    """The number of dims of a transposed / viewed tensor when the code says it."""
    if depth > 4 or not isinstance(expr, cst.Call):
        if depth <= 4 and isinstance(expr, (cst.Name, cst.Attribute)) and dotted_name(expr) is not None:
            defs = flow.definitions(expr)
            if defs and len(defs) == 1 and defs[0][0] is flow:
                return _ndim(program, flow, defs[0][1], depth + 1)
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
        return _ndim(program, flow, func.value, depth + 1)
    return None


def _dtype_view(program: ProgramModel, call: cst.Call) -> bool:
    """``x.view(torch.float16)`` / ``a.view(np.uint8)`` / ``x.view(dtype=...)`` reinterpret the bytes."""
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == "dtype":
            return True
        value = arg.value
        if isinstance(value, (cst.SimpleString, cst.ConcatenatedString, cst.FormattedString)):
            return True
        if isinstance(value, cst.Attribute):
            qual = program.qualname(value) or ""
            if qual.split(".")[0] in ("torch", "numpy", "np") and qual.rsplit(".", 1)[-1][:1].islower() \
                    and qual.rsplit(".", 1)[-1] not in ("shape",):
                return True
            if qual.split(".")[0] in ("numpy", "np"):
                return True
        if isinstance(value, cst.Name) and ("dtype" in value.value.lower() or value.value.lower().endswith("type")):
            return True
    return False
