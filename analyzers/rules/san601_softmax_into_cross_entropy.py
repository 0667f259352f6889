from __future__ import annotations

from ..dataflow import (
    CROSS_ENTROPY, LOG_SOFTMAX, SOFTMAX, loss_inputs, unwrap_activation_fix,
)
from ..model import ProgramModel
from ..rule import Invalid, Rule


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
        "import torch.nn as nn\ncriterion = nn.CrossEntropyLoss()\nlogits = model(x)\nloss = criterion(logits, y)\n",
        # probabilities for a metric, logits for the loss
        "import torch.nn.functional as F\nlogits = model(x)\nloss = F.cross_entropy(logits, y)\n"
        "probs = F.softmax(logits, dim=1)\nacc = (probs.argmax(1) == y).float().mean()\n",
        # the name was rebound to the logits before the loss
        "import torch\nimport torch.nn.functional as F\nout = torch.softmax(z, 1)\nout = model(x)\nloss = F.cross_entropy(out, y)\n",
        # only in one branch: cannot tell
        "import torch.nn.functional as F\nout = model(x)\nif calibrate:\n    out = F.softmax(out, dim=1)\nloss = F.cross_entropy(out, y)\n",
        # log_softmax goes with NLLLoss
        "import torch.nn as nn, torch.nn.functional as F\nloss = nn.NLLLoss()(F.log_softmax(z, dim=1), y)\n",
        # a model ending in Linear
        "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 3))\n"
        "loss = nn.CrossEntropyLoss()(model(x), y)\n",
        # an unrelated softmax
        "def softmax(x):\n    return x\nimport torch.nn.functional as F\nloss = F.cross_entropy(softmax(z), y)\n",
    ]
    INVALID = [
        Invalid(
            "import torch.nn.functional as F\nloss = F.cross_entropy(F.softmax(logits, dim=1), y)\n",
            line=2,
            fixed="import torch.nn.functional as F\nloss = F.cross_entropy(logits, y)\n",
        ),
        Invalid(
            "import torch\nimport torch.nn as nn\ncriterion = nn.CrossEntropyLoss()\n"
            "def step(model, x, y):\n    logits = model(x)\n    probs = torch.softmax(logits, dim=-1)\n"
            "    return criterion(probs, y)\n",
            line=7,
            fixed="import torch\nimport torch.nn as nn\ncriterion = nn.CrossEntropyLoss()\n"
            "def step(model, x, y):\n    logits = model(x)\n    probs = torch.softmax(logits, dim=-1)\n"
            "    return criterion(logits, y)\n",
        ),
        Invalid(
            "import torch.nn as nn\nloss = nn.CrossEntropyLoss()(out.log_softmax(-1), y)\n",
            line=2,
            fixed="import torch.nn as nn\nloss = nn.CrossEntropyLoss()(out, y)\n",
        ),
        Invalid(
            "import torch.nn as nn\nmodel = nn.Sequential(nn.Linear(784, 10), nn.Softmax(dim=1))\n"
            "loss_fn = nn.CrossEntropyLoss()\nloss = loss_fn(model(x), y)\n",
            line=4,
        ),
        Invalid(
            "import torch.nn as nn\nimport torch.nn.functional as F\n"
            "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n        self.fc = nn.Linear(8, 2)\n"
            "    def forward(self, x):\n        return F.softmax(self.fc(x), dim=1)\n"
            "net = Net()\nout = net(x)\nloss = F.cross_entropy(out, y)\n",
            line=11,
        ),
    ]

    def check(self, model: ProgramModel):
        for flow, call, arg, act in loss_inputs(model, CROSS_ENTROPY):
            if act is None or act.kind not in (SOFTMAX, LOG_SOFTMAX):
                continue
            if act.kind == LOG_SOFTMAX:
                message = ("CrossEntropyLoss applies log_softmax itself; this input already went through "
                           "log_softmax (redundant: pass the logits, or use NLLLoss)")
            elif act.call is None:
                message = ("CrossEntropyLoss expects raw logits, but this model's output has already been "
                           "through softmax (its last layer / forward ends in softmax)")
            else:
                message = self.message
            yield self.finding(arg.value, message=message,
                               fix=unwrap_activation_fix(flow, arg, act, "Pass the logits (drop the softmax)"))
