from __future__ import annotations

import re

import libcst as cst

from ..dataflow import dataflow
from ..flow import calls_by_callee
from ..model import MODEL, ProgramModel, dotted_name
from ..rule import Invalid, NodeEdit, NodeFix, Rule, SAFE

# Names that, by themselves, say "this is a network" (model, net, netG, encoder, self.backbone, ...).
_MODULE_NAME = re.compile(
    r"^(model|net|network|module|encoder|decoder|backbone|classifier|generator|discriminator|critic|actor"
    r"|policy|head|teacher|student|unet|transformer|resnet|vae|autoencoder)s?(_?[a-z0-9]{0,2})?$"
    r"|_(model|net|network|encoder|decoder|backbone|classifier)$"
)
_FORWARD_LIKE = frozenset({"forward", "__call__", "_forward", "_call_impl", "_wrapped_call_impl"})


class ForwardCalledDirectly(Rule):
    """`model.forward(x)` on a module, outside a module's own `forward` (where delegating is normal)."""

    code = "SAN703"
    name = "forward-called-directly"
    message = "calling .forward() directly skips the module's hooks; call the module: model(x)"
    why = """
        `model(x)` runs `nn.Module.__call__`, which runs forward pre-hooks and hooks, and is what
        DistributedDataParallel, FSDP, `torch.compile`, AMP autocast wrappers, pruning / quantization
        observers and profilers hook into. `model.forward(x)` bypasses all of that: DDP stops syncing
        gradients correctly, hooks silently stop firing.
    """
    example = """
        logits = model.forward(images)   # SAN703
    """
    fix_doc = """
        Call the module itself: `model(images)`. Inside a module's own `forward`, delegating to
        `super().forward(x)` or a submodule is left alone.
    """
    known_problems = """
        Receivers must be known modules (built from `nn.Module` subclasses or known layers); a `forward` call
        on an object of unknown type is left alone.
    """
    fix_safety = """
        Safe: calling the module runs `forward` plus its hooks; with no hooks registered the result is the
        same, and with hooks it is what the hooks' authors meant.
    """
    VALID = [
        "logits = model(images)\n",
        "import torch.nn as nn\nclass M(nn.Linear):\n    def forward(self, x):\n        return super().forward(x) * 2\n",
        "import torch.nn as nn\nclass M(nn.Module):\n    def forward(self, x):\n        return self.block.forward(x)\n",
        # Lightning: self.forward inside a step is how the module calls itself
        "import lightning as L\nclass Lit(L.LightningModule):\n    def training_step(self, batch, idx):\n        return self.forward(batch)\n",
        # a custom autograd Function's static forward
        "y = MyFunction.forward(ctx, x)\n",
        "from base import BaseModel\nclass Model(BaseModel):\n    def predict(self, x):\n        return self.net.forward(x)\n",
        # not known to be a module
        "out = pipeline.forward(x)\n",
        "class MyModule:\n    def forward(self, x):\n        return x\nmodule1 = MyModule()\nout = module1.forward(t)\n",
    ]
    INVALID = [
        Invalid(
            "import torchvision\nmodel = torchvision.models.resnet18()\nout = model.forward(x)\n",
            line=3,
            fixed="import torchvision\nmodel = torchvision.models.resnet18()\nout = model(x)\n",
        ),
        Invalid(
            "import torch.nn as nn\nclass Net(nn.Module):\n    pass\nnet = Net().to(device)\nfor x, y in loader:\n    out = net.forward(x)\n",
            line=6,
            fixed="import torch.nn as nn\nclass Net(nn.Module):\n    pass\nnet = Net().to(device)\nfor x, y in loader:\n    out = net(x)\n",
        ),
        # a parameter called `model`: reported, but no fix (its type is not known here)
        Invalid(
            "import torch.nn as nn\nclass Trainer:\n    def __init__(self):\n        self.model = nn.Linear(2, 2)\n"
            "    def step(self, x):\n        return self.model.forward(x)\n",
            line=6,
            fixed="import torch.nn as nn\nclass Trainer:\n    def __init__(self):\n        self.model = nn.Linear(2, 2)\n"
            "    def step(self, x):\n        return self.model(x)\n",
        ),
        Invalid("def evaluate(model, loader):\n    for x, y in loader:\n        out = model.forward(x)\n", line=3),
    ]

    def check(self, model: ProgramModel):
        flow = None
        for call in calls_by_callee(model)[1].get("forward", ()):
            func = call.func
            receiver = func.value
            name = dotted_name(receiver)
            if name is None or name == "self" or name.split(".")[0] in model.imports:
                continue  # super().forward(...), self.forward(...), torch.nn.Module.forward(...)
            last = name.rsplit(".", 1)[-1]
            if last[:1].isupper():
                continue  # a class: autograd Function / unbound method call
            function = model.enclosing_function(call)
            if any(isinstance(a, cst.FunctionDef) and a.name.value in _FORWARD_LIKE for a in model.ancestors(call)):
                continue
            if flow is None:
                flow = dataflow(model)
            if name.startswith("self.") and _in_module_class(model, flow, function):
                continue  # a module's own method delegating to its submodules
            if any(isinstance(a, cst.FunctionDef) and any("script" in model.code_for(d.decorator) for d in a.decorators)
                   for a in model.ancestors(call)):
                continue  # TorchScript calls methods explicitly
            known = _known_module(model, flow, receiver)
            if not known:
                if not _MODULE_NAME.match(last.lower()):
                    continue
                defs = flow.definitions(receiver)
                if defs and all(_plain_object(f.model, v) for f, v in defs):
                    continue  # we can see what it is, and it is not a module

            if not known and function is None and not model.bindings.get(name) and name not in model.imports:
                continue  # an undefined global: nothing tells us what it is
            fix = NodeFix("Call the module", (NodeEdit("replace", func, model.code_for(receiver)),), SAFE) if known else None
            yield self.finding(call, fix=fix)


def _plain_object(model: ProgramModel, value: cst.BaseExpression) -> bool:
    """An instance of a class defined here that is not an nn.Module, or a literal."""
    if isinstance(value, cst.Call):
        name = dotted_name(value.func)
        return name is not None and name in model.classes and name not in model.module_classes
    return not isinstance(value, (cst.Name, cst.Attribute, cst.Subscript))


def _in_module_class(model: ProgramModel, flow, function: cst.FunctionDef | None) -> bool:
    class_name = flow.class_of(function)
    if class_name is None:
        return False
    if class_name in model.module_classes:
        return True
    classdef = model.classes.get(class_name)
    # a class deriving from something we cannot resolve (another file's Module): cannot tell, so yes
    return classdef is not None and any(model.qualname(b.value) not in (None, "object") for b in classdef.bases)


def _known_module(model: ProgramModel, flow, receiver: cst.BaseExpression) -> bool:
    if model.kind_of(receiver) == MODEL:
        refs = None
    else:
        refs = flow.module_of(receiver)
        if not refs:
            return False
    if refs is None:
        # kind_of says MODEL: confirm the binding reaching this use is a module too when we can see it
        defs = flow.definitions(receiver)
        if defs is None:
            return True
        return all(other.model.kind_of(value) == MODEL or other.module_of(value) for other, value in defs)
    return True
