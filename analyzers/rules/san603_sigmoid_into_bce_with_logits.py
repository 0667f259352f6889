from __future__ import annotations

from ..dataflow import (
    BCE_WITH_LOGITS, SIGMOID, loss_inputs, unwrap_activation_fix,
)
from ..model import ProgramModel
from ..rule import Invalid, Rule


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
        "import torch\nimport torch.nn as nn\ncriterion = nn.BCEWithLogitsLoss()\nlogits = model(x)\n"
        "loss = criterion(logits, y)\npreds = torch.sigmoid(logits) > 0.5\n",
        "import torch\nimport torch.nn as nn\nloss = nn.BCELoss()(torch.sigmoid(model(x)), y)\n",
        "import torch.nn.functional as F\nloss = F.binary_cross_entropy_with_logits(out, y)\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nimport torch.nn as nn\ncriterion = nn.BCEWithLogitsLoss()\nloss = criterion(torch.sigmoid(out), y)\n",
            line=4,
            fixed="import torch\nimport torch.nn as nn\ncriterion = nn.BCEWithLogitsLoss()\nloss = criterion(out, y)\n",
        ),
        Invalid(
            "import torch.nn.functional as F\nprobs = logits.sigmoid()\nloss = F.binary_cross_entropy_with_logits(probs, target)\n",
            line=3,
            fixed="import torch.nn.functional as F\nprobs = logits.sigmoid()\nloss = F.binary_cross_entropy_with_logits(logits, target)\n",
        ),
        Invalid(
            "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(16, 1), nn.Sigmoid())\nloss = nn.BCEWithLogitsLoss()(model(x), y)\n",
            line=3,
        ),
    ]

    def check(self, model: ProgramModel):
        for flow, call, arg, act in loss_inputs(model, BCE_WITH_LOGITS):
            if act is None or act.kind != SIGMOID:
                continue
            message = self.message if act.call is not None else (
                "BCEWithLogitsLoss applies sigmoid itself, but this model's output already ends in sigmoid")
            yield self.finding(arg.value, message=message,
                               fix=unwrap_activation_fix(flow, arg, act, "Pass the logits (drop the sigmoid)"))
