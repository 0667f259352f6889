from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..dataflow import same_value
from ..model import ProgramModel
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name, int_literal
from ._shapes import shape_unpack


class ViewAsPermute(Rule):
    """`.view()` / `.reshape()` whose target sizes are the source's own dims in another order
    (`n, c, h, w = x.shape; x.view(n, h, w, c)`, `x.view(x.size(1), x.size(0))`, `x.view(b, h * w, c)`):
    an attempt to move dimensions that only reinterprets memory."""

    code = "SAN301"
    name = "view-as-permute"
    message = "view() with reordered sizes does not move dimensions: it scrambles the data; use permute()"
    why = """
        `view` / `reshape` keep the elements in memory order and only change how they are indexed. Asking
        for the same sizes in another order (NCHW → NHWC with `view(n, h, w, c)`) silently mixes values of
        different channels, positions or even samples. Nothing fails: shapes match and the model trains,
        just much worse — the classic bug that Karpathy's recipe catches with a batch-independence check.
    """
    example = """
        n, c, h, w = x.shape
        x = x.view(n, h, w, c)   # SAN301
    """
    fix_doc = """
        Move dimensions with `permute` (`x.permute(0, 2, 3, 1)`), then `reshape` if you also merge or split
        them (`x.permute(0, 2, 3, 1).reshape(n, h * w, c)`). The quick fix writes exactly that.
    """
    known_problems = """
        Sizes must be traceable to the tensor's own shape (`x.shape`, `x.size(i)`, names unpacked from them);
        sizes from configuration values or computed elsewhere are not compared. A merged size (`w * h`) is
        never read as a reordering. A `-1` is read as the dims the other sizes leave over only when those
        dims are consecutive.
    """
    fix_safety = """
        Unsafe: `permute` gives a different tensor (the values move), which is the point, but code after it
        that was written against the scrambled layout (shapes of later layers, a checkpoint trained that way)
        may rely on the old values. The differential test in the repository checks that the fixed code gives
        the transposed layout on random tensors. Not offered when the result is reshaped again right away.
    """
    VALID = [
        # splits / merges of adjacent dims keep the order
        Valid("""
            n, c, h, w = x.shape
            y = x.view(n, -1)
            z = x.view(n, c, h * w)
            q = x.view(n * c, h, w)
        """),
        # a merged size is a product: the order of its factors does not reorder anything
        Valid("""
            b, c, h, w = y.shape
            z = y.view(b, c, w * h)
        """),
        Valid("""
            b, t, d = x.shape
            y = x.view(b, t, 8, d // 8)
        """),
        # permuted first, then reshaped: correct
        Valid("""
            n, c, h, w = x.shape
            y = x.permute(0, 2, 3, 1).reshape(n, h * w, c)
        """),
        # x was rebound after the unpacking: the sizes no longer describe it
        Valid("""
            n, c, h, w = x.shape
            x = x.permute(0, 2, 3, 1)
            y = x.reshape(n, h, w, c)
        """),
        Valid("""
            y = x.view(x.size(0), -1)
        """),
        Valid("""
            h, w = img.shape[-2:]
            y = img.view(w, h)
        """),
        # -1 keeps the order: flattening the spatial dims
        Valid("""
            b, c, h, w = feats.shape
            flat = feats.view(b, c, -1)
        """),
        # -1 over dims that are not consecutive: the intent is unclear
        Valid("""
            n, c, h, w = x.shape
            rows = x.view(-1, c)
        """),
    ]
    INVALID = [
        Invalid(
            """
            def f(x):
                n, c, h, w = x.shape
                return x.view(n, h, w, c)
            """,
            line=3,
            fixed="""
            def f(x):
                n, c, h, w = x.shape
                return x.permute(0, 2, 3, 1)
            """,
        ),
        Invalid(
            """
            b, c, h, w = feats.size()
            tokens = feats.view(b, h * w, c)
            """,
            line=2,
            fixed="""
            b, c, h, w = feats.size()
            tokens = feats.permute(0, 2, 3, 1).reshape(b, h * w, c)
            """,
        ),
        Invalid(
            """
            seq = x.reshape(x.size(1), x.size(0), x.size(2))
            """,
            line=1,
            fixed="""
            seq = x.permute(1, 0, 2)
            """,
        ),
        # chained views: reported, but no fix (the second view may be compensating)
        Invalid("""
            n, c, h, w = x.shape
            x = x.view(n, h, w, c).view(n, c, h, w)
        """, line=2),
        Invalid(
            """
            B, T, C = x.shape
            y = x.view(T, B, -1)
            """,
            line=2,
            fixed="""
            B, T, C = x.shape
            y = x.permute(1, 0, 2)
            """,
        ),
        # -1 stands for the dims the other sizes leave over (here h * w)
        Invalid(
            """
            b, c, h, w = feats.shape
            tokens = feats.view(b, -1, c)
            """,
            line=2,
            fixed="""
            b, c, h, w = feats.shape
            tokens = feats.permute(0, 2, 3, 1).reshape(b, -1, c)
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        for call in program.calls:
            func = call.func
            if not (type(func) is cst.Attribute and func.attr.value in ("view", "reshape")) or not call.args:
                continue
            receiver = dotted_name(func.value)
            if receiver is None or receiver.split(".")[0] in program.imports:
                continue
            args = [a for a in call.args]
            if any(a.star or a.keyword is not None for a in args):
                continue
            values = [a.value for a in args]
            if len(values) == 1 and isinstance(values[0], (cst.Tuple, cst.List)):
                if any(isinstance(e, cst.StarredElement) for e in values[0].elements):
                    continue
                values = [e.value for e in values[0].elements]
            if len(values) < 2:
                continue
            if flow is None:
                flow = ctx.dataflow
            perm = _permutation(flow, receiver, call, values)
            if perm is None:
                continue
            order, merged = perm
            base = program.code_for(func.value)
            text = f"{base}.permute({', '.join(map(str, order))})"
            if merged:
                text += f".reshape({', '.join(program.code_for(v) for v in values)})"
            message = self.message if func.attr.value == "view" else self.message.replace("view()", "reshape()", 1)
            fix = None if _reshaped_again(program, call) else NodeFix("Use permute()", (Replace(call, text),), UNSAFE)
            yield self.finding(call, message=message, fix=fix)


def _reshaped_again(program: ProgramModel, call: cst.Call) -> bool:
    """``x.view(n, h, w, c).view(n, c, h, w)``: the next view may be compensating; the intent is unclear."""
    parent = program.parent(call)
    return isinstance(parent, cst.Attribute) and parent.attr.value in ("view", "reshape", "view_as", "reshape_as",
                                                                       "flatten", "unflatten")


def _permutation(flow, receiver: str, call: cst.Call, values: list[cst.BaseExpression]):
    """(dims order, merged?) when the sizes are a non-trivial reordering of the receiver's dims."""
    groups: list[list[int]] = []
    ndim: set[int] = set()
    wildcard = 0
    for value in values:
        if _is_minus_one(value):
            wildcard += 1
            groups.append([-1])
            continue
        factors = _factors(value)
        if factors is None:
            return None
        group = []
        for factor in factors:
            dim = _dim_of(flow, receiver, call, factor, ndim)
            if dim is None:
                return None
            group.append(dim)
        groups.append(group)
    if wildcard > 1 or len(ndim) > 1:
        return None
    count = ndim.pop() if ndim else None
    flat = [d for g in groups for d in g]
    if any(d < -1 for d in flat):
        if count is None:
            return None
        flat = [d + 1 + count if d < -1 else d for d in flat]
        groups = [[d + 1 + count if d < -1 else d for d in g] for g in groups]
    known = [d for d in flat if d != -1]
    if len(set(known)) != len(known):
        return None
    if count is None:
        if wildcard:
            return None
        count = len(known)
    if wildcard:
        # -1 is inferred: the product of the dims the other sizes leave over, when they are consecutive
        missing = sorted(set(range(count)) - set(known))
        if not missing or missing != list(range(missing[0], missing[-1] + 1)):
            return None
        groups = [missing if g == [-1] else g for g in groups]
        flat = [d for g in groups for d in g]
    # a product is one merged size whatever the order of its factors (`w * h` == `h * w`): not a reorder
    groups = [sorted(g) for g in groups]
    flat = [d for g in groups for d in g]
    if sorted(flat) != list(range(count)) or flat == sorted(flat):
        return None
    return flat, any(len(g) > 1 for g in groups)


def _is_minus_one(value: cst.BaseExpression) -> bool:
    return isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus) \
        and isinstance(value.expression, cst.Integer) and value.expression.value == "1"


def _factors(value: cst.BaseExpression) -> list[cst.BaseExpression] | None:
    if isinstance(value, cst.BinaryOperation):
        if not isinstance(value.operator, cst.Multiply):
            return None
        left, right = _factors(value.left), _factors(value.right)
        return None if left is None or right is None else left + right
    return [value]


def _dim_of(flow, receiver: str, call: cst.Call, value: cst.BaseExpression, ndim: set[int]) -> int | None:
    """Which dim of ``receiver`` the size expression ``value`` is, or None. Negative indices are offset
    by one more (-1 → -2) so that they do not clash with the ``-1`` wildcard; the caller normalises."""
    if isinstance(value, cst.Name):
        unpack = shape_unpack(flow, value.value, call)
        if unpack is None:
            return None
        source, index, count, binding = unpack
        if source != receiver or not same_value(flow, receiver, binding.node, call):
            return None
        ndim.add(count)
        return index
    index_expr = None
    owner = None
    if isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) and value.func.attr.value == "size" \
            and len(value.args) == 1 and value.args[0].keyword is None:
        owner, index_expr = value.func.value, value.args[0].value
    elif isinstance(value, cst.Subscript) and len(value.slice) == 1 and isinstance(value.slice[0].slice, cst.Index):
        target = value.value
        if isinstance(target, cst.Attribute) and target.attr.value == "shape":
            owner = target.value
        elif isinstance(target, cst.Call) and isinstance(target.func, cst.Attribute) and target.func.attr.value == "size" \
                and not target.args:
            owner = target.func.value
        index_expr = value.slice[0].slice.value
    if owner is None or dotted_name(owner) != receiver:
        return None
    index = int_literal(index_expr)
    if index is None:
        return None
    return index if index >= 0 else index - 1
