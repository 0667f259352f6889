from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..dataflow import Activation, Dataflow, uses_of
from ..losses import loss_inputs
from ..model import ProgramModel
from ..rule import SAFE, UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..torch_api import LOGITS, NLL, SIGMOID, SOFTMAX


class NllWithoutLogSoftmax(Rule):
    """`nn.NLLLoss` / `F.nll_loss` applied to probabilities (`softmax` / `sigmoid` output) or to raw logits
    (the output of a `Linear` / `Conv` layer, or of a model whose last layer is one), instead of
    log-probabilities."""

    code = "SAN602"
    name = "nll-without-log-softmax"
    message = "NLLLoss expects log-probabilities (log_softmax output), not probabilities or raw logits"
    why = """
        `NLLLoss` only picks `-input[target]`: it does not normalise. On raw logits the loss is unbounded
        below (the model minimises it by growing the target logit forever); on probabilities it minimises
        `-p` instead of `-log p`, a much weaker signal that trains poorly and reports meaningless values.
        `NLLLoss(log_softmax(z))` is `CrossEntropyLoss(z)`.
    """
    example = """
        out = F.softmax(self.fc(x), dim=1)
        loss = F.nll_loss(out, y)   # SAN602
    """
    fix_doc = """
        Use `log_softmax` instead of `softmax` (or add it in front of the loss for raw logits), or pass the
        logits to `CrossEntropyLoss`, which does both.
    """
    known_problems = """
        The input is classified from how it was produced (softmax, sigmoid, a linear layer); values produced
        by unknown functions or loaded from elsewhere are not classified.
    """
    fix_safety = """
        Replacing `softmax` with `log_softmax` is safe: it is offered only when the probabilities are used by
        the loss alone. Wrapping raw logits in `log_softmax(..., dim=1)` is unsafe: the rule cannot see the
        input's shape, and `dim=1` is the class dimension only for batched input.
    """
    VALID = [
        Valid("""
            import torch.nn.functional as F
            loss = F.nll_loss(F.log_softmax(logits, dim=1), y)
        """),
        Valid("""
            import torch
            import torch.nn.functional as F
            loss = F.nll_loss(torch.log(probs + 1e-8), y)
        """),
        # a model whose forward ends in log_softmax (the PyTorch MNIST example)
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 2)
                def forward(self, x):
                    return F.log_softmax(self.fc(x), dim=1)
            model = Net()
            loss = F.nll_loss(model(x), y)
        """),
        # unknown model output: stay silent
        Valid("""
            import torch.nn.functional as F
            def train(model, x, y):
                return F.nll_loss(model(x), y)
        """),
        Valid("""
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(4, 3), nn.LogSoftmax(dim=1))
            loss = nn.NLLLoss()(model(x), y)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn.functional as F
            loss = F.nll_loss(F.softmax(logits, dim=1), y)
            """,
            line=2,
            fixed="""
            import torch.nn.functional as F
            loss = F.nll_loss(F.log_softmax(logits, dim=1), y)
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            criterion = nn.NLLLoss()
            probs = logits.softmax(dim=1)
            loss = criterion(probs, y)
            """,
            line=5,
            fixed="""
            import torch
            import torch.nn as nn
            criterion = nn.NLLLoss()
            probs = logits.log_softmax(dim=1)
            loss = criterion(probs, y)
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
            loss = nn.NLLLoss()(model(x), y)
            """,
            line=4,
            fixed="""
            import torch
            import torch.nn as nn
            model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
            loss = nn.NLLLoss()(torch.log_softmax(model(x), dim=1), y)
            """,
        ),
        Invalid(
            """
            import torch.nn.functional as F
            p = F.softmax(z, dim=1)
            loss = F.nll_loss(p, y)
            conf = p.max(1)
            """,
            line=3,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        for flow, call, arg, act in loss_inputs(program, NLL):
            if act is None or act.kind not in (SOFTMAX, SIGMOID, LOGITS):
                continue
            if act.kind == LOGITS:
                message = "NLLLoss on raw logits: it expects log-probabilities; apply log_softmax (or use CrossEntropyLoss)"
                fix = _log_softmax_wrap(program, arg)
            elif act.kind == SIGMOID:
                message = "NLLLoss on sigmoid probabilities: it expects log-probabilities (log_softmax output)"
                fix = None
            else:
                message = "NLLLoss on softmax probabilities: it expects log-probabilities; use log_softmax"
                fix = _softmax_to_log_softmax(flow, arg, act)
            yield self.finding(arg.value, message=message, fix=fix)


def _log_softmax_wrap(program: ProgramModel, arg: cst.Arg) -> NodeFix | None:
    functional = next((alias for alias, full in program.imports.items() if full == "torch.nn.functional"), None)
    prefix = f"{functional}.log_softmax" if functional else ("torch.log_softmax" if program.imports.get("torch") == "torch" else None)
    if prefix is None:
        return None
    return NodeFix("Apply log_softmax", (Replace(arg.value, f"{prefix}({program.code_for(arg.value)}, dim=1)"),), UNSAFE)


def _softmax_to_log_softmax(flow: Dataflow, arg: cst.Arg, act: Activation) -> NodeFix | None:
    call = act.call
    if call is None or act.program is not flow.program or not isinstance(call.func, cst.Attribute) \
            or call.func.attr.value != "softmax":
        return None
    if call is not arg.value:
        # through a name: only when the probabilities are used for nothing else
        if not isinstance(arg.value, cst.Name):
            return None
        parent = flow.program.parent(call)
        if not isinstance(parent, cst.Assign) or len(parent.targets) != 1 \
                or not isinstance(parent.targets[0].target, cst.Name) \
                or parent.targets[0].target.value != arg.value.value:
            return None
        scope = flow.scope(call)
        if flow.scope(arg.value) is not scope:
            return None
        if len(uses_of(flow, arg.value.value, scope if scope is not None else flow.program.module)) != 2:
            return None
    return NodeFix("Use log_softmax", (Replace(call.func.attr, "log_softmax"),), SAFE)
