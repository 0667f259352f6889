from __future__ import annotations

from ..context import RuleContext
from ..losses import loss_inputs, unwrap_activation_fix
from ..rule import Invalid, Rule, Valid
from ..torch_api import BCE_WITH_LOGITS, SIGMOID


class SigmoidIntoBceWithLogits(Rule):
    """The output of `sigmoid` (or of a model whose last layer is `nn.Sigmoid`) passed to
    `nn.BCEWithLogitsLoss` / `F.binary_cross_entropy_with_logits`."""

    code = "SAN603"
    name = "sigmoid-into-bce-with-logits"
    message = "BCEWithLogitsLoss applies sigmoid itself; this input has already been through sigmoid"
    why = """
        `BCEWithLogitsLoss(z)` computes `BCE(sigmoid(z))` in a numerically stable way. Fed `sigmoid(z)`, it
        applies sigmoid twice: predictions are squeezed into (0.5, 0.73), the loss can never reach zero and
        the gradients vanish, so the model learns slowly or not at all.
    """
    example = """
        out = torch.sigmoid(model(x))
        loss = nn.BCEWithLogitsLoss()(out, y)   # SAN603
    """
    fix_doc = """
        Pass the logits to `BCEWithLogitsLoss` and use `sigmoid` only for predictions / metrics (or keep the
        sigmoid and use `BCELoss`, which is less stable). The quick fix drops the sigmoid when that is exact.
    """
    known_problems = """
        Like SAN601, sigmoid outputs are followed through names and simple data flow only.
    """
    fix_safety = """
        Safe: when offered, the fix passes the value sigmoid was applied to (the logits) instead; nothing else
        uses the changed expression.
    """
    VALID = [
        Valid("""
            import torch
            import torch.nn as nn
            criterion = nn.BCEWithLogitsLoss()
            logits = model(x)
            loss = criterion(logits, y)
            preds = torch.sigmoid(logits) > 0.5
        """),
        Valid("""
            import torch
            import torch.nn as nn
            loss = nn.BCELoss()(torch.sigmoid(model(x)), y)
        """),
        Valid("""
            import torch.nn.functional as F
            loss = F.binary_cross_entropy_with_logits(out, y)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch
            import torch.nn as nn
            criterion = nn.BCEWithLogitsLoss()
            loss = criterion(torch.sigmoid(out), y)
            """,
            line=4,
            fixed="""
            import torch
            import torch.nn as nn
            criterion = nn.BCEWithLogitsLoss()
            loss = criterion(out, y)
            """,
        ),
        Invalid(
            """
            import torch.nn.functional as F
            probs = logits.sigmoid()
            loss = F.binary_cross_entropy_with_logits(probs, target)
            """,
            line=3,
            fixed="""
            import torch.nn.functional as F
            probs = logits.sigmoid()
            loss = F.binary_cross_entropy_with_logits(logits, target)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(16, 1), nn.Sigmoid())
            loss = nn.BCEWithLogitsLoss()(model(x), y)
            """,
            line=3,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        for flow, call, arg, act in loss_inputs(program, BCE_WITH_LOGITS):
            if act is None or act.kind != SIGMOID:
                continue
            message = self.message if not act.model else (
                "BCEWithLogitsLoss applies sigmoid itself, but this model's output already ends in sigmoid")
            yield self.finding(arg.value, message=message,
                               fix=unwrap_activation_fix(flow, arg, act, "Pass the logits (drop the sigmoid)"))
