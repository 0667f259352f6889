from __future__ import annotations

from ..context import RuleContext
from ..losses import loss_inputs, unwrap_activation_fix
from ..rule import Invalid, Rule, Valid
from ..torch_api import CROSS_ENTROPY, LOG_SOFTMAX, SOFTMAX


class SoftmaxIntoCrossEntropy(Rule):
    """The output of `softmax` / `log_softmax` (or of a model whose last layer is `nn.Softmax`, or whose
    `forward` returns `F.softmax(...)`) passed to `nn.CrossEntropyLoss` / `F.cross_entropy`."""

    code = "SAN601"
    name = "softmax-into-cross-entropy"
    message = "CrossEntropyLoss expects raw logits, but this input has already been through softmax"
    why = """
        `CrossEntropyLoss` applies `log_softmax` itself. Fed probabilities, it computes
        `log_softmax(softmax(z))`: the outputs are squashed into [0, 1], the loss can never go near zero,
        the gradients shrink as the model grows confident and training stalls early (the initial loss is
        still about ln C, so the bug hides well). A `log_softmax` before it is redundant (log_softmax is
        idempotent) and only costs time; it usually means the author thought the loss wanted
        log-probabilities (that is `NLLLoss`).
    """
    example = """
        probs = F.softmax(model(x), dim=1)
        loss = F.cross_entropy(probs, y)   # SAN601
    """
    fix_doc = """
        Pass the logits: drop the softmax before the loss (keep it only where probabilities are needed,
        e.g. for metrics or at inference). When the model itself ends in `nn.Softmax`, remove that layer
        and apply softmax at inference time. The quick fix replaces the softmax output by its input when
        that is exact.
    """
    known_problems = """
        Softmax outputs are followed through names, tuples, attributes and one level of calls, and models
        across files of the same project; outputs that pass through containers or unknown functions are lost.
    """
    fix_safety = """
        Safe: when offered, the fix passes the value softmax was applied to (the logits) instead, which changes
        only the loss input the finding names. Not offered when the logits' name was rebound in between.
    """
    VALID = [
        Valid("""
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            logits = model(x)
            loss = criterion(logits, y)
        """),
        # probabilities for a metric, logits for the loss
        Valid("""
            import torch.nn.functional as F
            logits = model(x)
            loss = F.cross_entropy(logits, y)
            probs = F.softmax(logits, dim=1)
            acc = (probs.argmax(1) == y).float().mean()
        """),
        # the name was rebound to the logits before the loss
        Valid("""
            import torch
            import torch.nn.functional as F
            out = torch.softmax(z, 1)
            out = model(x)
            loss = F.cross_entropy(out, y)
        """),
        # only in one branch: cannot tell
        Valid("""
            import torch.nn.functional as F
            out = model(x)
            if calibrate:
                out = F.softmax(out, dim=1)
            loss = F.cross_entropy(out, y)
        """),
        # log_softmax goes with NLLLoss
        Valid("""
            import torch.nn as nn, torch.nn.functional as F
            loss = nn.NLLLoss()(F.log_softmax(z, dim=1), y)
        """),
        # a model ending in Linear
        Valid("""
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 3))
            loss = nn.CrossEntropyLoss()(model(x), y)
        """),
        # an unrelated softmax
        Valid("""
            def softmax(x):
                return x
            import torch.nn.functional as F
            loss = F.cross_entropy(softmax(z), y)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn.functional as F
            loss = F.cross_entropy(F.softmax(logits, dim=1), y)
            """,
            line=2,
            fixed="""
            import torch.nn.functional as F
            loss = F.cross_entropy(logits, y)
            """,
        ),
        Invalid(
            """
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            def step(model, x, y):
                logits = model(x)
                probs = torch.softmax(logits, dim=-1)
                return criterion(probs, y)
            """,
            line=7,
            fixed="""
            import torch
            import torch.nn as nn
            criterion = nn.CrossEntropyLoss()
            def step(model, x, y):
                logits = model(x)
                probs = torch.softmax(logits, dim=-1)
                return criterion(logits, y)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            loss = nn.CrossEntropyLoss()(out.log_softmax(-1), y)
            """,
            line=2,
            fixed="""
            import torch.nn as nn
            loss = nn.CrossEntropyLoss()(out, y)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            model = nn.Sequential(nn.Linear(784, 10), nn.Softmax(dim=1))
            loss_fn = nn.CrossEntropyLoss()
            loss = loss_fn(model(x), y)
            """,
            line=4,
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(8, 2)
                def forward(self, x):
                    return F.softmax(self.fc(x), dim=1)
            net = Net()
            out = net(x)
            loss = F.cross_entropy(out, y)
            """,
            line=11,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        for flow, call, arg, act in loss_inputs(program, CROSS_ENTROPY):
            if act is None or act.kind not in (SOFTMAX, LOG_SOFTMAX):
                continue
            if act.kind == LOG_SOFTMAX:
                message = ("CrossEntropyLoss applies log_softmax itself; this input already went through "
                           "log_softmax (redundant: pass the logits, or use NLLLoss)")
            elif act.model:
                message = ("CrossEntropyLoss expects raw logits, but this model's output has already been "
                           "through softmax (its last layer / forward ends in softmax)")
            else:
                message = self.message
            yield self.finding(arg.value, message=message,
                               fix=unwrap_activation_fix(flow, arg, act, "Pass the logits (drop the softmax)"))
