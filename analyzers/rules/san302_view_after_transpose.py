from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import calls_by_callee
from ..model import ProgramModel
from ..rule import SAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name, int_literal
from ._layout import (
    TRANSPOSING_ATTRIBUTES,
    ndim,
    permutation,
    permuted_at_call_sites,
    permuted_source,
    size_count,
    transposing,
)
from ._shapes import shape_unpack


class ViewAfterTranspose(Rule):
    """`.view(...)` on the result of `.transpose()` / `.permute()` / `.t()` / `.T` / `.mT` (directly, through
    a name bound to it, through elementwise arithmetic that keeps its strides, or through a method's parameter
    at a call site that passes it) without `.contiguous()` in between."""

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
        Non-contiguity is followed through direct chains, names, elementwise arithmetic whose tensor operands
        are all permuted alike (numbers aside: `eps * std + mu`, `torch.exp(0.5 * v)`, `torch.randn_like(v)`),
        the `return` of a helper or `self.method(...)`, and into a parameter of a method or helper of the same
        file at each call site on its own: a view is reported when one call site passes a tensor whose layout
        the view breaks, even if other call sites pass contiguous tensors. An operand the rule cannot place
        (`x.transpose(1, 2) * w`) keeps it silent, although PyTorch gives the result the first operand's
        strides. A method that a subclass in the same file overrides is not followed. A view is taken as
        legal when its sizes map onto dims that stay adjacent and in order after the permute; each name,
        attribute or literal size is read as one dim, a product as several, and a `-1` as the dims left over,
        so a single name that stands for a product (`n_tokens = h * w`) can hide a bug or cause a report.
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
        # the call site makes the permuted samples contiguous before the method views them
        Valid("""
            import torch
            import torch.nn as nn

            class VAE(nn.Module):
                def decode(self, z):
                    return self.net(z.view(-1, self.latent_dim))

                def forward(self, mu, log_var):
                    mu = mu.repeat(self.k, 1, 1).permute(1, 0, 2)
                    z = torch.randn_like(mu) * torch.exp(0.5 * log_var) + mu
                    return self.decode(z.contiguous())
        """),
        # a parameter that one call site passes permuted, but the view merges only dims left adjacent
        Valid("""
            import torch.nn as nn

            class Tokens(nn.Module):
                def flatten(self, t, b, c):
                    return t.view(b, -1, c)

                def forward(self, x):
                    b, c, h, w = x.shape
                    return self.flatten(x.permute(0, 2, 3, 1), b, c)
        """),
        # the first operand of an elementwise operation decides the layout: here a contiguous one
        Valid("""
            import torch

            def f(x, b):
                y = torch.ones_like(x) * x.transpose(1, 2)
                return y.view(b, -1)
        """),
    ]
    INVALID = [
        # forward() permutes the importance samples; decode() views its parameter (sample() passes a contiguous
        # one: each call site is judged on its own)
        Invalid(
            """
            import torch
            import torch.nn as nn

            class VAE(nn.Module):
                def decode(self, z):
                    return self.net(z.view(-1, self.latent_dim))

                def reparameterize(self, mu, log_var):
                    std = torch.exp(0.5 * log_var)
                    eps = torch.randn_like(std)
                    return eps * std + mu

                def forward(self, mu, log_var):
                    mu = mu.repeat(self.k, 1, 1).permute(1, 0, 2)
                    log_var = log_var.repeat(self.k, 1, 1).permute(1, 0, 2)
                    z = self.reparameterize(mu, log_var)
                    return self.decode(z)

                def sample(self, n):
                    return self.decode(torch.randn(n, self.k, self.latent_dim))
            """,
            line=6,
            message="view() on `z`, which forward() passes transposed / permuted to self.decode(): it is not "
                    "contiguous there; use reshape() (or .contiguous().view())",
            fixed="""
            import torch
            import torch.nn as nn

            class VAE(nn.Module):
                def decode(self, z):
                    return self.net(z.reshape(-1, self.latent_dim))

                def reparameterize(self, mu, log_var):
                    std = torch.exp(0.5 * log_var)
                    eps = torch.randn_like(std)
                    return eps * std + mu

                def forward(self, mu, log_var):
                    mu = mu.repeat(self.k, 1, 1).permute(1, 0, 2)
                    log_var = log_var.repeat(self.k, 1, 1).permute(1, 0, 2)
                    z = self.reparameterize(mu, log_var)
                    return self.decode(z)

                def sample(self, n):
                    return self.decode(torch.randn(n, self.k, self.latent_dim))
            """,
        ),
        # elementwise arithmetic with numbers keeps the permuted strides
        Invalid(
            """
            def f(x, n):
                y = x.permute(0, 2, 3, 1) * 0.5 + 1
                return y.view(n, -1)
            """,
            line=3,
            fixed="""
            def f(x, n):
                y = x.permute(0, 2, 3, 1) * 0.5 + 1
                return y.reshape(n, -1)
            """,
        ),
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
        for call in calls_by_callee(program)[1].get("view", ()):
            if not call.args or _dtype_view(program, call):
                continue
            receiver = call.func.value
            if not isinstance(receiver, (cst.Call, cst.Attribute, cst.BinaryOperation, cst.UnaryOperation)):
                receiver = _sliced(receiver)
            found, message = _judged(program, ctx, receiver, call)
            if found:
                fix = NodeFix("Use reshape()", (Replace(call.func.attr, "reshape"),), SAFE)
                yield self.finding(call, message, fix=fix)


def _judged(program: ProgramModel, ctx: RuleContext, receiver: cst.BaseExpression,
            call: cst.Call) -> tuple[bool, str | None]:
    """Whether ``receiver.view(...)`` breaks a transpose's layout, and the message when it is not the rule's."""
    sizes = size_count(call)
    transposed_attribute = isinstance(receiver, cst.Attribute) and receiver.attr.value in TRANSPOSING_ATTRIBUTES
    if isinstance(receiver, cst.Call) or transposed_attribute:
        if transposing(program, receiver):
            return _breaks(program, ctx.dataflow, receiver, call, sizes), None
        message = _propagated(program, ctx.dataflow, receiver, call, sizes)
        return message is not None, message
    name = dotted_name(receiver)
    if name is None and isinstance(receiver, (cst.BinaryOperation, cst.UnaryOperation)):
        message = _propagated(program, ctx.dataflow, receiver, call, sizes)
        return message is not None, message
    if name is None or name.split(".")[0] in program.imports:
        return False, None
    flow = ctx.dataflow
    defs = flow.definitions(receiver)
    if defs and len(defs) == 1 and defs[0][0] is flow:
        defs = [(flow, _same_layout_source(program, flow, defs[0][1]))]
    if defs and all(f.program is program and transposing(program, v) for f, v in defs):
        ndims = {ndim(program, flow, v) for _, v in defs}
        if None not in ndims and sizes is not None and sizes > max(ndims):
            return False, None  # only splits dims: legal on a non-contiguous tensor
        return not all(_merges_adjacent_dims(program, flow, v, call) or _keeps_matrix_shape(flow, v, call)
                       for _, v in defs), None
    message = _propagated(program, flow, receiver, call, sizes)
    return message is not None, message


def _breaks(program: ProgramModel, flow, source: cst.BaseExpression, call: cst.Call, sizes: int | None) -> bool:
    """``view(...)`` (``sizes`` sizes) of a tensor with the strides of ``source`` cannot be expressed."""
    count = ndim(program, flow, source)
    if count is not None and sizes is not None and sizes > count:
        return False  # only splits dims: legal on a non-contiguous tensor
    return not (_merges_adjacent_dims(program, flow, source, call) or _keeps_matrix_shape(flow, source, call))


def _propagated(program: ProgramModel, flow, receiver: cst.BaseExpression, call: cst.Call,
                sizes: int | None) -> str | None:
    """The message for a view whose receiver keeps a transpose's strides through elementwise operations, a
    method's return or, judged per call site, a parameter; None when no such source breaks the view."""
    source = permuted_source(program, flow, receiver)
    if source is not None:
        return ViewAfterTranspose.message if _breaks(program, flow, source, call, sizes) else None
    if not isinstance(receiver, cst.Name):
        return None
    for source, site in permuted_at_call_sites(program, flow, receiver):
        if _breaks(program, flow, source, call, sizes):
            caller = flow.scope(site)
            where = f"{caller.name.value}()" if caller is not None else "module level"
            callee = dotted_name(site.func) or "the call"
            return (f"view() on `{receiver.value}`, which {where} passes transposed / permuted to {callee}(): "
                    "it is not contiguous there; use reshape() (or .contiguous().view())")
    return None


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
    if transposing(program, source):
        return source
    if dotted_name(source) is not None and dotted_name(source).split(".")[0] not in program.imports:
        defs = flow.definitions(source)
        if defs and len(defs) == 1 and defs[0][0] is flow:
            inner = _same_layout_source(program, flow, defs[0][1], depth + 1)
            if transposing(program, inner):
                return inner
    return expr


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
    order = permutation(program, flow, transposed)
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
