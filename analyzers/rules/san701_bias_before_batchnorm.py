from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..dataflow import dataflow, uses_of
from ..lookups import named_calls
from ..model import ProgramModel
from ..name_guesses import names_a_batch_norm
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name, is_true

# Layer → index of `bias` among its positional parameters.
_BIAS_POSITION = {
    "torch.nn.Linear": 2, "torch.nn.LazyLinear": 1,
    "torch.nn.Conv1d": 7, "torch.nn.Conv2d": 7, "torch.nn.Conv3d": 7,
    "torch.nn.ConvTranspose1d": 7, "torch.nn.ConvTranspose2d": 7, "torch.nn.ConvTranspose3d": 7,
    "torch.nn.LazyConv1d": 6, "torch.nn.LazyConv2d": 6, "torch.nn.LazyConv3d": 6,
    "torch.nn.LazyConvTranspose1d": 6, "torch.nn.LazyConvTranspose2d": 6, "torch.nn.LazyConvTranspose3d": 6,
}
_BATCHNORMS = frozenset({
    "torch.nn.BatchNorm1d", "torch.nn.BatchNorm2d", "torch.nn.BatchNorm3d", "torch.nn.SyncBatchNorm",
    "torch.nn.LazyBatchNorm1d", "torch.nn.LazyBatchNorm2d", "torch.nn.LazyBatchNorm3d",
})


class BiasBeforeBatchNorm(Rule):
    """A `Conv*` / `Linear` layer with a bias (the default) directly followed by `BatchNorm*`: next to each
    other in `nn.Sequential(...)` or a layer list, or `x = self.bn(self.conv(x))` / consecutive statements
    in `forward`."""

    code = "SAN701"
    name = "bias-before-batchnorm"
    message = "this layer's bias is cancelled by the BatchNorm that follows it; use bias=False"
    why = """
        BatchNorm subtracts the per-channel batch mean, so a constant bias added just before it is removed
        again: the parameter gets (numerically) zero gradient, wastes memory and optimizer state, and with
        weight decay it is just noise. BatchNorm's own `beta` plays the role of the bias.
    """
    example = """
        nn.Sequential(nn.Conv2d(3, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU())   # SAN701
    """
    fix_doc = """
        Create the layer with `bias=False` (what torchvision's ResNet does).
    """
    known_problems = """
        Adjacency is read from `nn.Sequential`, layer lists (also of layers first bound to a local name) and
        consecutive calls in `forward`; layers connected through helpers, `ModuleDict` or a dynamic loop are not
        paired. A batch norm of another package or of the project is recognised by its class name (`...BatchNorm`,
        `GhostBatchNorm2d`; not `FrozenBatchNorm2d`, whose statistics are fixed).
    """
    fix_safety = """
        Unsafe: `bias=False` removes a parameter: the model's `state_dict` loses a key, so existing checkpoints
        no longer load strictly, and optimizer parameter groups change.
    """
    VALID = [
        Valid("""
            import torch.nn as nn
            block = nn.Sequential(nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU())
        """),
        Valid("""
            import torch.nn as nn
            block = nn.Sequential(nn.Conv2d(3, 64, 3), nn.ReLU(), nn.BatchNorm2d(64))
        """),
        Valid("""
            import torch.nn as nn
            head = nn.Sequential(nn.Linear(128, 64), nn.LayerNorm(64))
        """),
        Valid("""
            import torch.nn as nn
            block = nn.Sequential(nn.Conv2d(3, 64, 3, bias=use_bias), nn.BatchNorm2d(64))
        """),
        Valid("""
            import torch.nn as nn
            block = nn.Sequential(nn.Conv2d(3, 64, 3, **cfg), nn.BatchNorm2d(64))
        """),
        # conv output also used without the BN
        Valid("""
            import torch.nn as nn
            class B(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv = nn.Conv2d(8, 8, 3)
                    self.bn = nn.BatchNorm2d(8)
                def forward(self, x):
                    y = self.conv(x)
                    z = self.bn(y)
                    return y + z
        """),
        # BN only on one configuration
        Valid("""
            import torch.nn as nn
            class B(nn.Module):
                def __init__(self, with_bn):
                    super().__init__()
                    self.fc = nn.Linear(5, 5)
                    self.bn = nn.BatchNorm1d(5)
                    self.with_bn = with_bn
                def forward(self, x):
                    x = self.fc(x)
                    if self.with_bn:
                        x = self.bn(x)
                    return x
        """),
        # frozen statistics do not cancel a bias
        Valid("""
            import torch.nn as nn
            from torchvision.ops.misc import FrozenBatchNorm2d

            stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3), FrozenBatchNorm2d(64), nn.ReLU())
        """),
    ]
    INVALID = [
        # the project's own batch-norm implementation
        Invalid(
            """
            import torch.nn as nn
            from mynets.normalization import BatchNorm

            features = nn.Sequential(
                nn.Conv2d(3, 64, 3, padding=1),
                BatchNorm(64),
                nn.ReLU(),
            )
            """,
            line=5,
        ),
        # the batch-norm built first (its weight zeroed), then placed after the convolution
        Invalid(
            """
            import torch.nn as nn
            out_norm = nn.BatchNorm2d(64)
            nn.init.zeros_(out_norm.weight)
            proj = nn.Sequential(nn.GELU(), nn.Conv2d(128, 64, 1), out_norm)
            """,
            line=4,
            column=32,
            fixed="""
            import torch.nn as nn
            out_norm = nn.BatchNorm2d(64)
            nn.init.zeros_(out_norm.weight)
            proj = nn.Sequential(nn.GELU(), nn.Conv2d(128, 64, 1, bias=False), out_norm)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            block = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=3, padding=1),
                nn.BatchNorm2d(64),
                nn.ReLU(),
            )
            """,
            line=3,
            fixed="""
            import torch.nn as nn
            block = nn.Sequential(
                nn.Conv2d(3, 64, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(64),
                nn.ReLU(),
            )
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            layers = [nn.Linear(256, 128, bias=True), nn.BatchNorm1d(128)]
            """,
            line=2,
            fixed="""
            import torch.nn as nn
            layers = [nn.Linear(256, 128, bias=False), nn.BatchNorm1d(128)]
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(3, 32, 3)
                    self.bn1 = nn.BatchNorm2d(32)
                def forward(self, x):
                    x = self.conv1(x)
                    x = self.bn1(x)
                    return F.relu(x)
            """,
            line=6,
            fixed="""
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.conv1 = nn.Conv2d(3, 32, 3, bias=False)
                    self.bn1 = nn.BatchNorm2d(32)
                def forward(self, x):
                    x = self.conv1(x)
                    x = self.bn1(x)
                    return F.relu(x)
            """,
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.fc = nn.Linear(64, 64)
                    self.norm = nn.BatchNorm1d(64)
                def forward(self, x):
                    return F.relu(self.norm(self.fc(x)))
            """,
            line=6,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        reported: set[int] = set()
        for call, qual in named_calls(program):
            if qual not in _BATCHNORMS and not names_a_batch_norm(qual or ""):
                continue
            if flow is None:
                flow = ctx.dataflow
            for layer, element in _preceding_layers(program, flow, call):
                if id(layer) in reported:
                    continue
                reported.add(id(layer))
                bias = _bias(program, layer)
                if bias is None:
                    continue
                fix = _fix(program, layer, bias) if element is layer else None
                yield self.finding(element, fix=fix)


def _bias(program: ProgramModel, layer: cst.Call) -> cst.Arg | bool | None:
    """The explicit ``bias=True`` argument, True when the bias is on by default, None otherwise."""
    position = _BIAS_POSITION.get(program.call_name(layer) or "")
    if position is None:
        return None
    positional = 0
    for arg in layer.args:
        if arg.star:
            return None
        if arg.keyword is None:
            if positional == position:
                return arg if is_true(arg.value) else None
            positional += 1
        elif arg.keyword.value == "bias":
            return arg if is_true(arg.value) else None
    return True


def _fix(program: ProgramModel, layer: cst.Call, bias: cst.Arg | bool) -> NodeFix | None:
    if isinstance(bias, cst.Arg):
        return NodeFix("Use bias=False", (Replace(bias.value, "False"),), UNSAFE)
    if not layer.args:
        return None
    last = layer.args[-1]
    return NodeFix("Use bias=False", (Replace(last.value, f"{program.code_for(last.value)}, bias=False"),), UNSAFE)


def _layer_call(program: ProgramModel, flow, expr: cst.BaseExpression) -> cst.Call | None:
    if isinstance(expr, cst.Call):
        return expr if program.call_name(expr) in _BIAS_POSITION else None
    if dotted_name(expr) is None:
        return None
    defs = flow.definitions(expr)
    if not defs or len(defs) != 1 or defs[0][0] is not flow:
        return None
    value = defs[0][1]
    return value if isinstance(value, cst.Call) and program.call_name(value) in _BIAS_POSITION else None


def _preceding_layers(program: ProgramModel, flow, bn: cst.Call):
    """(layer constructor call, node to report) for the layers whose output goes straight into ``bn``."""
    parent = program.parent(bn)
    # nn.Sequential(conv, bn) / [conv, bn, relu]
    if isinstance(parent, (cst.Arg, cst.Element)):
        yield from _before_in_container(program, flow, parent)
        return
    # bn = nn.BatchNorm2d(...) (its weight set up), then nn.Sequential(conv, bn)
    if isinstance(parent, cst.Assign) and len(parent.targets) == 1 and type(parent.targets[0].target) is cst.Name:
        name = parent.targets[0].target.value
        for use in flow.names_in(flow.scope(parent) or program.module).get(name, ()):
            holder = program.parent(use)
            if isinstance(holder, (cst.Arg, cst.Element)) and getattr(flow.reaching(name, use), "node", None) is parent:
                yield from _before_in_container(program, flow, holder)
        return
    # self.bn = nn.BatchNorm2d(...) in __init__, used in the class's methods
    if not isinstance(parent, cst.Assign) or len(parent.targets) != 1:
        return
    target = dotted_name(parent.targets[0].target)
    if target is None or not target.startswith("self.") or target.count(".") != 1:
        return
    class_name = flow.class_of(flow.scope(parent))
    if class_name is None:
        return
    calls_by_attr = _self_calls(program, flow).get(class_name, {})
    fed: dict[str, list[bool]] = {}
    for bn_call in calls_by_attr.get(target, []):
        if len(bn_call.args) != 1 or bn_call.args[0].keyword is not None or bn_call.args[0].star:
            continue
        source = _direct_source(program, flow, bn_call)
        if source is not None:
            fed.setdefault(dotted_name(source.func), []).append(source)
    for attr, sources in fed.items():
        uses = calls_by_attr.get(attr, [])
        if len(uses) != len(sources) or not all(any(u is s for s in sources) for u in uses):
            continue  # the layer's output also goes elsewhere
        defs = flow.definitions(sources[0].func)
        if not defs or len(defs) != 1 or defs[0][0] is not flow:
            continue
        layer = defs[0][1]
        if isinstance(layer, cst.Call) and program.call_name(layer) in _BIAS_POSITION:
            yield layer, layer


def _before_in_container(program: ProgramModel, flow, holder: cst.Arg | cst.Element):
    """The layer right before ``holder`` in ``nn.Sequential(...)`` or a list / tuple of layers."""
    container = program.parent(holder)
    if isinstance(holder, cst.Arg):
        if holder.keyword is not None or not isinstance(container, cst.Call) \
                or program.call_name(container) != "torch.nn.Sequential":
            return
        args = list(container.args)
        index = next(i for i, a in enumerate(args) if a is holder)
        if index > 0 and args[index - 1].keyword is None and not args[index - 1].star:
            layer = _layer_call(program, flow, args[index - 1].value)
            if layer is not None:
                yield layer, args[index - 1].value
    elif isinstance(container, (cst.List, cst.Tuple)):
        elements = list(container.elements)
        index = next(i for i, e in enumerate(elements) if e is holder)
        if index > 0 and isinstance(elements[index - 1], cst.Element):
            layer = _layer_call(program, flow, elements[index - 1].value)
            if layer is not None:
                yield layer, elements[index - 1].value


def _self_calls(program: ProgramModel, flow) -> dict[str, dict[str, list[cst.Call]]]:
    """class name → ``self.attr`` → the calls ``self.attr(...)`` in that class's methods (built once)."""
    return program.cached(_self_calls_index)


def _self_calls_index(program: ProgramModel) -> dict[str, dict[str, list[cst.Call]]]:
    flow = dataflow(program)
    index: dict[str, dict[str, list[cst.Call]]] = {}
    for call in program.calls:
        func = call.func
        if type(func) is cst.Attribute and type(func.value) is cst.Name and func.value.value == "self":
            class_name = flow.class_of(flow.scope(call))
            if class_name is not None:
                index.setdefault(class_name, {}).setdefault(f"self.{func.attr.value}", []).append(call)
    return index


def _direct_source(program: ProgramModel, flow, bn_call: cst.Call) -> cst.Call | None:
    """The ``self.layer(...)`` call whose output is ``bn_call``'s input and nothing else's."""
    value = bn_call.args[0].value
    if isinstance(value, cst.Call):
        name = dotted_name(value.func)
        return value if name is not None and name.startswith("self.") and name.count(".") == 1 else None
    if not isinstance(value, cst.Name):
        return None
    binding = flow.reaching(value.value, bn_call)
    if binding is None or getattr(binding, "value", None) is None or not isinstance(binding.value, cst.Call):
        return None
    source = binding.value
    name = dotted_name(source.func)
    if name is None or not name.startswith("self.") or name.count(".") != 1:
        return None
    statement = program.parent(bn_call)
    if program.parent(program.enclosing_statement(bn_call)) is not program.parent(program.enclosing_statement(binding.node)):
        return None  # `if self.with_bn: x = self.bn(x)`: the layer's output does not always go to the BN
    rebinds = isinstance(statement, cst.Assign) and len(statement.targets) == 1 \
        and isinstance(statement.targets[0].target, cst.Name) and statement.targets[0].target.value == value.value
    scope = flow.scope(bn_call)
    if not rebinds and (scope is None or len(uses_of(flow, value.value, scope)) != 2):
        return None
    if rebinds and scope is not None:
        # x = conv(x); x = bn(x): nothing may read x in between
        between = [n for n in uses_of(flow, value.value, scope)
                   if flow.precedes(binding.node, n) and flow.precedes(n, statement)]
        if between:
            return None
    return source
