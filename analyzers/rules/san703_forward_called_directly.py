from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import calls_by_callee
from ..model import ProgramModel
from ..name_guesses import says_network
from ..rule import SAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name
from ..torch_api import MODEL
from ..values import values

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
        Valid("""
            logits = model(images)
        """),
        Valid("""
            import torch.nn as nn
            class M(nn.Linear):
                def forward(self, x):
                    return super().forward(x) * 2
        """),
        Valid("""
            import torch.nn as nn
            class M(nn.Module):
                def forward(self, x):
                    return self.block.forward(x)
        """),
        # Lightning: self.forward inside a step is how the module calls itself
        Valid("""
            import lightning as L
            class Lit(L.LightningModule):
                def training_step(self, batch, idx):
                    return self.forward(batch)
        """),
        # a custom autograd Function's static forward
        Valid("""
            y = MyFunction.forward(ctx, x)
        """),
        Valid("""
            from base import BaseModel
            class Model(BaseModel):
                def predict(self, x):
                    return self.net.forward(x)
        """),
        # not known to be a module
        Valid("""
            out = pipeline.forward(x)
        """),
        Valid("""
            class MyModule:
                def forward(self, x):
                    return x
            module1 = MyModule()
            out = module1.forward(t)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torchvision
            model = torchvision.models.resnet18()
            out = model.forward(x)
            """,
            line=3,
            fixed="""
            import torchvision
            model = torchvision.models.resnet18()
            out = model(x)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                pass
            net = Net().to(device)
            for x, y in loader:
                out = net.forward(x)
            """,
            line=6,
            fixed="""
            import torch.nn as nn
            class Net(nn.Module):
                pass
            net = Net().to(device)
            for x, y in loader:
                out = net(x)
            """,
        ),
        # a parameter called `model`: reported, but no fix (its type is not known here)
        Invalid(
            """
            import torch.nn as nn
            class Trainer:
                def __init__(self):
                    self.model = nn.Linear(2, 2)
                def step(self, x):
                    return self.model.forward(x)
            """,
            line=6,
            fixed="""
            import torch.nn as nn
            class Trainer:
                def __init__(self):
                    self.model = nn.Linear(2, 2)
                def step(self, x):
                    return self.model(x)
            """,
        ),
        Invalid("""
            def evaluate(model, loader):
                for x, y in loader:
                    out = model.forward(x)
        """, line=3),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        for call in calls_by_callee(program)[1].get("forward", ()):
            func = call.func
            receiver = func.value
            name = dotted_name(receiver)
            if name is None or name == "self" or name.split(".")[0] in program.imports:
                continue  # super().forward(...), self.forward(...), torch.nn.Module.forward(...)
            last = name.rsplit(".", 1)[-1]
            if last[:1].isupper():
                continue  # a class: autograd Function / unbound method call
            function = program.enclosing_function(call)
            if any(isinstance(a, cst.FunctionDef) and a.name.value in _FORWARD_LIKE for a in program.ancestors(call)):
                continue
            if flow is None:
                flow = ctx.dataflow
            if name.startswith("self.") and _in_module_class(program, flow, function):
                continue  # a module's own method delegating to its submodules
            if any(isinstance(a, cst.FunctionDef) and any("script" in program.code_for(d.decorator) for d in a.decorators)
                   for a in program.ancestors(call)):
                continue  # TorchScript calls methods explicitly
            known = _known_module(program, flow, receiver)
            if not known:
                if not says_network(last.lower()):
                    continue
                defs = flow.definitions(receiver)
                if defs and all(_plain_object(f.program, v) for f, v in defs):
                    continue  # we can see what it is, and it is not a module

            if not known and function is None and not program.bindings.get(name) and name not in program.imports:
                continue  # an undefined global: nothing tells us what it is
            fix = NodeFix("Call the module", (Replace(func, program.code_for(receiver)),), SAFE) if known else None
            yield self.finding(call, fix=fix)


def _plain_object(program: ProgramModel, value: cst.BaseExpression) -> bool:
    """An instance of a class defined here that is not an nn.Module, or a literal."""
    if isinstance(value, cst.Call):
        name = dotted_name(value.func)
        return name is not None and name in program.classes and name not in program.module_classes
    return not isinstance(value, (cst.Name, cst.Attribute, cst.Subscript))


def _in_module_class(program: ProgramModel, flow, function: cst.FunctionDef | None) -> bool:
    class_name = flow.class_of(function)
    if class_name is None:
        return False
    if class_name in program.module_classes:
        return True
    classdef = program.classes.get(class_name)
    # a class deriving from something we cannot resolve (another file's Module): cannot tell, so yes
    return classdef is not None and any(program.qualname(b.value) not in (None, "object") for b in classdef.bases)


def _known_module(program: ProgramModel, flow, receiver: cst.BaseExpression) -> bool:
    """The receiver holds a module: its abstract value says so; when the value is unknown, the module's
    bindings of the name say so and every definition the dataflow sees is a module."""
    value = values(program).of(receiver)
    if value is not None:
        return value.kind == MODEL
    if program.kind_of(receiver) != MODEL:
        return False
    defs = flow.definitions(receiver)
    return defs is None or all(other.program.kind_of(v) == MODEL or other.module_of(v) for other, v in defs)
