from __future__ import annotations

import libcst as cst

from ..flow import named_calls
from ..model import ProgramModel
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE


def _positive_number(expr: cst.BaseExpression) -> bool | None:
    """True / False for a numeric literal (or a negated one), None when it is not a literal."""
    if isinstance(expr, (cst.Integer, cst.Float)):
        return float(expr.value.replace("_", "")) > 0
    if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Minus):
        return False if isinstance(expr.expression, (cst.Integer, cst.Float)) else None
    return None


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
        "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n",
        "import torch\nopt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), weight_decay=0)\n",
        "import torch\nopt = torch.optim.Adam(model.parameters(), weight_decay=0.0)\n",
        "from torch.optim import SGD\nopt = SGD(model.parameters(), lr=0.1, weight_decay=5e-4)\n",
        # An unrelated class named Adam is not torch's.
        "class Adam:\n    def __init__(self, params, weight_decay): pass\nopt = Adam(params, weight_decay=0.1)\n",
        # A variable weight decay may well be zero: stay silent.
        "import torch\nopt = torch.optim.Adam(model.parameters(), weight_decay=args.wd)\n",
    ]
    INVALID = [
        Invalid(
            "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n",
            line=2,
            fixed="import torch\nopt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)\n",
        ),
        Invalid(
            "from torch import optim\noptimizer = optim.Adam(net.parameters(), 3e-4, (0.9, 0.999), 1e-8, 5e-4)\n",
            line=2,
            fixed="from torch import optim\noptimizer = optim.AdamW(net.parameters(), 3e-4, (0.9, 0.999), 1e-8, 5e-4)\n",
        ),
        Invalid(
            "from torch.optim import Adam\nopt = Adam(params, weight_decay=0.01)\n",
            line=2,
            fixed="from torch.optim import Adam, AdamW\nopt = AdamW(params, weight_decay=0.01)\n",
        ),
    ]

    def check(self, model: ProgramModel):
        for call, qual in named_calls(model):
            if qual not in ("torch.optim.Adam", "torch.optim.adam.Adam"):
                continue
            decay = next((a.value for a in call.args if a.keyword and a.keyword.value == "weight_decay"), None)
            if decay is None:
                positional = [a for a in call.args if a.keyword is None and not a.star]
                decay = positional[4].value if len(positional) > 4 else None
            if decay is None or not _positive_number(decay):
                continue
            yield self.finding(call.func, fix=_adamw_fix(model, call))


def _adamw_fix(model: ProgramModel, call: cst.Call) -> NodeFix | None:
    func = call.func
    if isinstance(func, cst.Attribute):
        return NodeFix("Use AdamW", (NodeEdit("replace", func.attr, "AdamW"),), UNSAFE)
    if isinstance(func, cst.Name):
        # `from torch.optim import Adam`: use AdamW and import it next to Adam.
        for node in model.module.body:
            for stmt in node.body if isinstance(node, cst.SimpleStatementLine) else ():
                if isinstance(stmt, cst.ImportFrom) and not isinstance(stmt.names, cst.ImportStar) and any(
                    isinstance(a.name, cst.Name) and a.name.value == func.value and a.asname is None for a in stmt.names
                ):
                    if any(isinstance(a.name, cst.Name) and a.name.value == "AdamW" for a in stmt.names):
                        return NodeFix("Use AdamW", (NodeEdit("replace", func, "AdamW"),), UNSAFE)
                    last = stmt.names[-1]
                    tail = last.asname.name if last.asname is not None else last.name
                    return NodeFix(
                        "Use AdamW",
                        (NodeEdit("replace", tail, f"{model.code_for(tail)}, AdamW"),
                         NodeEdit("replace", func, "AdamW")), UNSAFE)
    return None
