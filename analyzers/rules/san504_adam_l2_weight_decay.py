from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import named_calls
from ..model import ProgramModel
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import number_literal


def _positive_number(expr: cst.BaseExpression) -> bool | None:
    """True / False for a numeric literal (or a negated one), None when it is not a literal."""
    value = number_literal(expr)
    return None if value is None else value > 0


class AdamL2WeightDecay(Rule):
    """`torch.optim.Adam(..., weight_decay=w)` with `w > 0`: Adam with coupled L2 regularisation."""

    code = "SAN504"
    name = "adam-l2-weight-decay"
    message = "Adam with weight_decay applies coupled L2, not decoupled weight decay; use AdamW"
    why = """
        Adam adds `weight_decay * w` to the gradient before its adaptive scaling, so parameters with
        large gradient history are barely regularised (Loshchilov & Hutter, "Decoupled Weight Decay
        Regularization"). Almost every recipe that sets weight decay with Adam means AdamW, whose decay
        is applied to the weights directly and behaves like SGD's.
    """
    example = """
        optimizer = torch.optim.Adam(model.parameters(), lr=3e-4, weight_decay=1e-2)
    """
    fix_doc = """
        Use `torch.optim.AdamW` with the same arguments (its default `weight_decay` is 1e-2). If coupled L2
        is really intended, keep Adam and suppress with `# noqa: SAN504`.
    """
    known_problems = """
        Only literal positive `weight_decay` values and the `torch.optim.Adam` class are checked; optimizers
        built from configuration dictionaries or through factories are not seen.
    """
    fix_safety = """
        Unsafe: AdamW is a different optimizer; with the same `weight_decay` the regularisation strength
        changes (decoupled decay is not scaled by the adaptive step), so a tuned value may need re-tuning.
    """
    VALID = [
        Valid("""
            import torch
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        """),
        Valid("""
            import torch
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)
        """),
        Valid("""
            import torch
            opt = torch.optim.Adam(model.parameters(), weight_decay=0)
        """),
        Valid("""
            import torch
            opt = torch.optim.Adam(model.parameters(), weight_decay=0.0)
        """),
        Valid("""
            from torch.optim import SGD
            opt = SGD(model.parameters(), lr=0.1, weight_decay=5e-4)
        """),
        # An unrelated class named Adam is not torch's.
        Valid("""
            class Adam:
                def __init__(self, params, weight_decay): pass
            opt = Adam(params, weight_decay=0.1)
        """),
        # A variable weight decay may well be zero: stay silent.
        Valid("""
            import torch
            opt = torch.optim.Adam(model.parameters(), weight_decay=args.wd)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
            """,
            line=2,
            column=6,
            message="Adam with weight_decay applies coupled L2, not decoupled weight decay; use AdamW",
            fixed="""
            import torch
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
            """,
        ),
        Invalid(
            """
            from torch import optim
            optimizer = optim.Adam(net.parameters(), 3e-4, (0.9, 0.999), 1e-8, 5e-4)
            """,
            line=2,
            fixed="""
            from torch import optim
            optimizer = optim.AdamW(net.parameters(), 3e-4, (0.9, 0.999), 1e-8, 5e-4)
            """,
        ),
        Invalid(
            """
            from torch.optim import Adam
            opt = Adam(params, weight_decay=0.01)
            """,
            line=2,
            fixed="""
            from torch.optim import Adam, AdamW
            opt = AdamW(params, weight_decay=0.01)
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        for call, qual in named_calls(program):
            if qual not in ("torch.optim.Adam", "torch.optim.adam.Adam"):
                continue
            decay = next((a.value for a in call.args if a.keyword and a.keyword.value == "weight_decay"), None)
            if decay is None:
                positional = [a for a in call.args if a.keyword is None and not a.star]
                decay = positional[4].value if len(positional) > 4 else None
            if decay is None or not _positive_number(decay):
                continue
            yield self.finding(call.func, fix=_adamw_fix(program, call))


def _adamw_fix(program: ProgramModel, call: cst.Call) -> NodeFix | None:
    func = call.func
    if isinstance(func, cst.Attribute):
        return NodeFix("Use AdamW", (Replace(func.attr, "AdamW"),), UNSAFE)
    if isinstance(func, cst.Name):
        # `from torch.optim import Adam`: use AdamW and import it next to Adam.
        for node in program.module.body:
            for stmt in node.body if isinstance(node, cst.SimpleStatementLine) else ():
                if isinstance(stmt, cst.ImportFrom) and not isinstance(stmt.names, cst.ImportStar) and any(
                    isinstance(a.name, cst.Name) and a.name.value == func.value and a.asname is None for a in stmt.names
                ):
                    if any(isinstance(a.name, cst.Name) and a.name.value == "AdamW" for a in stmt.names):
                        return NodeFix("Use AdamW", (Replace(func, "AdamW"),), UNSAFE)
                    last = stmt.names[-1]
                    tail = last.asname.name if last.asname is not None else last.name
                    return NodeFix(
                        "Use AdamW",
                        (Replace(tail, f"{program.code_for(tail)}, AdamW"),
                         Replace(func, "AdamW")), UNSAFE)
    return None
