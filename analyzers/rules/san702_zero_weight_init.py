from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..dataflow import ForTarget
from ..lookups import named_calls
from ..model import ProgramModel
from ..rule import Invalid, Rule, Valid
from ..syntax import dotted_name, number_literal

_ZERO_INITS = frozenset({"torch.nn.init.zeros_", "torch.nn.init.zeros"})
_ONE_INITS = frozenset({"torch.nn.init.ones_", "torch.nn.init.ones"})
_CONSTANT_INITS = frozenset({"torch.nn.init.constant_", "torch.nn.init.constant"})
_INITS = _ZERO_INITS | _ONE_INITS | _CONSTANT_INITS
_WEIGHT_LAYERS = frozenset(
    f"torch.nn.{name}" for name in (
        "Linear", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
        "LazyLinear", "LazyConv1d", "LazyConv2d", "LazyConv3d",
    )
)


class ZeroWeightInit(Rule):
    """The weights of every `Linear` / `Conv` layer of a network (or every parameter) initialised to one
    constant: `nn.init.zeros_(m.weight)` / `constant_(m.weight, 0)` / `m.weight.data.fill_(0)` for each
    `m` of `model.modules()` or in a function passed to `model.apply`, guarded by
    `isinstance(m, nn.Linear)`-style checks; or `for p in model.parameters(): nn.init.zeros_(p)`.
    Zero-initialising single layers (residual branches, output heads, LoRA `B`) is common and left alone."""

    code = "SAN702"
    name = "zero-weight-init"
    message = "all weights initialised to the same constant: every unit of a layer computes and learns the same thing"
    why = """
        When every weight starts at the same value, all units of a layer compute the same output and receive
        the same gradient, so they stay identical for ever (the symmetry is never broken); with zeros, the
        gradients of the hidden layers are exactly zero as well. The network behaves as if it had one
        unit per layer. Biases may start at zero; weights need small random values.
    """
    example = """
        def init_weights(m):
            if isinstance(m, nn.Linear):
                nn.init.zeros_(m.weight)   # SAN702
        model.apply(init_weights)
    """
    fix_doc = """
        Initialise weights randomly with a scale that fits the activation: `nn.init.kaiming_normal_`
        (ReLU), `nn.init.xavier_uniform_` (tanh / linear), or keep PyTorch's default; zero only the biases.
    """
    known_problems = """
        Only initialisation loops over all modules or all parameters are reported; a constant set through a
        custom init function the rule cannot read is not seen.
    """
    fix_safety = """
        No fix: the right initialisation depends on the architecture.
    """
    VALID = [
        Valid("""
            import torch.nn as nn
            def init_weights(m):
                if isinstance(m, nn.Linear):
                    nn.init.xavier_uniform_(m.weight)
                    nn.init.zeros_(m.bias)
            model.apply(init_weights)
        """),
        # torchvision ResNet's zero_init_residual: BN weights of the last block layer
        Valid("""
            import torch.nn as nn
            class R(nn.Module):
                def __init__(self):
                    super().__init__()
                    for m in self.modules():
                        if isinstance(m, nn.BatchNorm2d):
                            nn.init.constant_(m.weight, 1)
                    for m in self.modules():
                        if isinstance(m, Bottleneck):
                            nn.init.constant_(m.bn3.weight, 0)
        """),
        # a single zero-initialised output layer / zero_module helper
        Valid("""
            import torch.nn as nn
            class D(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.out = nn.Linear(8, 8)
                    nn.init.zeros_(self.out.weight)
        """),
        Valid("""
            def zero_module(module):
                for p in module.parameters():
                    p.detach().zero_()
                return module
        """),
        Valid("""
            import torch.nn as nn
            for m in model.modules():
                if isinstance(m, nn.Linear):
                    nn.init.normal_(m.weight, 0, 0.01)
                    nn.init.constant_(m.bias, 0)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.a = nn.Linear(4, 8)
                    self.b = nn.Linear(8, 2)
                    self.apply(self._init)
                def _init(self, m):
                    if isinstance(m, nn.Linear):
                        nn.init.zeros_(m.weight)
            """,
            line=10,
        ),
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                def __init__(self):
                    super().__init__()
                    self.body = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 8, 3))
                    for m in self.modules():
                        if isinstance(m, (nn.Conv2d, nn.Linear)):
                            m.weight.data.fill_(0.0)
            """,
            line=8,
        ),
        Invalid(
            """
            import torch.nn as nn
            class Net(nn.Module):
                pass
            net = Net()
            for p in net.parameters():
                nn.init.constant_(p, 0.0)
            """,
            line=6,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        apply_targets: dict[str, list[cst.BaseExpression]] | None = None
        for call, qual in named_calls(program):
            target = _constant_init_target(call, qual)
            if target is None:
                continue
            if flow is None:
                flow = ctx.dataflow
            name = dotted_name(target)
            if name is None:
                continue
            if name.endswith(".weight") and name.count(".") == 1:
                layer = name.split(".")[0]
                if not _guarded_by_weight_layers(program, call, layer):
                    continue
                binding = flow.reaching(layer, call)
                if isinstance(binding, ForTarget):
                    network = _modules_receiver(binding.loop, layer)
                    if network is None or not _whole_network(program, flow, network):
                        continue
                elif binding is None:
                    function = flow.scope(call)
                    if function is None or layer not in flow.params(function):
                        continue
                    if apply_targets is None:
                        apply_targets = _apply_calls(program)
                    receivers = apply_targets.get(function.name.value, [])
                    if not receivers or not all(_whole_network(program, flow, r) for r in receivers):
                        continue
                else:
                    continue
                yield self.finding(call)
            elif "." not in name:
                binding = flow.reaching(name, call)
                if not isinstance(binding, ForTarget):
                    continue
                network = _parameters_receiver(binding.loop, name)
                if network is None or not _whole_network(program, flow, network):
                    continue
                if _guard_mentions(program, call, binding.loop, "bias"):
                    continue
                yield self.finding(call, message="every parameter initialised to the same constant: units stay "
                                                 "identical (symmetric) and never learn different features")


def _constant_init_target(call: cst.Call, qual: str | None) -> cst.BaseExpression | None:
    func = call.func
    if qual not in _INITS and not (type(func) is cst.Attribute and func.attr.value in ("zero_", "fill_")):
        return None
    args = [a for a in call.args if not a.star]
    if qual in _ZERO_INITS or qual in _ONE_INITS:
        return args[0].value if args and args[0].keyword is None else None
    if qual in _CONSTANT_INITS:
        if len(args) >= 2 and number_literal(args[1].value) is not None:
            return args[0].value if args[0].keyword is None else None
        return None
    if type(func) is cst.Attribute and (func.attr.value == "zero_" and not args
                                        or func.attr.value == "fill_" and len(args) == 1 and number_literal(args[0].value) is not None):
        receiver = func.value
        if isinstance(receiver, cst.Attribute) and receiver.attr.value == "data":
            receiver = receiver.value
        elif isinstance(receiver, cst.Call) and isinstance(receiver.func, cst.Attribute) \
                and receiver.func.attr.value == "detach" and not receiver.args:
            receiver = receiver.func.value
        return receiver
    return None


def _guarded_by_weight_layers(program: ProgramModel, call: cst.Call, layer: str) -> bool:
    """The call sits in the body of ``if isinstance(layer, (nn.Linear, nn.Conv2d, ...))``."""
    previous: cst.CSTNode = call
    for ancestor in program.ancestors(call):
        if isinstance(ancestor, cst.FunctionDef):
            return False
        if isinstance(ancestor, cst.If) and previous is ancestor.body:
            types = _isinstance_types(program, ancestor.test, layer)
            if types is not None:
                return bool(types) and types <= _WEIGHT_LAYERS
        previous = ancestor
    return False


def _isinstance_types(program: ProgramModel, test: cst.BaseExpression, layer: str) -> set[str] | None:
    if isinstance(test, cst.Call) and dotted_name(test.func) == "isinstance" and len(test.args) == 2 \
            and dotted_name(test.args[0].value) == layer:
        spec = test.args[1].value
        elements = spec.elements if isinstance(spec, (cst.Tuple, cst.List)) else None
        values = [e.value for e in elements] if elements is not None else [spec]
        return {program.qualname(v) or "?" for v in values}
    return None


def _modules_receiver(loop: cst.For, layer: str) -> cst.BaseExpression | None:
    """``net`` for ``for m in net.modules()`` / ``for name, m in net.named_modules()``."""
    iterator = loop.iter
    if not (isinstance(iterator, cst.Call) and isinstance(iterator.func, cst.Attribute)):
        return None
    method = iterator.func.attr.value
    if method == "modules" and isinstance(loop.target, cst.Name) and loop.target.value == layer:
        return iterator.func.value
    if method == "named_modules" and isinstance(loop.target, cst.Tuple) and len(loop.target.elements) == 2 \
            and dotted_name(loop.target.elements[1].value) == layer:
        return iterator.func.value
    return None


def _parameters_receiver(loop: cst.For, name: str) -> cst.BaseExpression | None:
    iterator = loop.iter
    if not (isinstance(iterator, cst.Call) and isinstance(iterator.func, cst.Attribute)):
        return None
    method = iterator.func.attr.value
    if method == "parameters" and isinstance(loop.target, cst.Name) and loop.target.value == name:
        return iterator.func.value
    if method == "named_parameters" and isinstance(loop.target, cst.Tuple) and len(loop.target.elements) == 2 \
            and dotted_name(loop.target.elements[1].value) == name:
        return iterator.func.value
    return None


def _whole_network(program: ProgramModel, flow, expr: cst.BaseExpression) -> bool:
    """``self`` inside an nn.Module class, or a name bound to a network (a model class, torchvision /
    timm constructor) rather than to one layer."""
    name = dotted_name(expr)
    if name == "self":
        return flow.class_of(program.enclosing_function(expr)) in program.module_classes
    refs = flow.module_of(expr)
    if refs:
        return all(ref.classdef is not None for ref in refs)
    defs = flow.definitions(expr)
    if defs and all(isinstance(v, cst.Call) and (f.program.call_name(v) or "").startswith(("torchvision.models.", "timm."))
                    for f, v in defs):
        return True
    return False


def _apply_calls(program: ProgramModel) -> dict[str, list[cst.BaseExpression]]:
    """Function name → receivers of ``receiver.apply(function)`` in this module."""
    out: dict[str, list[cst.BaseExpression]] = {}
    for call in program.calls:
        func = call.func
        if type(func) is cst.Attribute and func.attr.value == "apply" and len(call.args) == 1:
            target = dotted_name(call.args[0].value)
            if target is not None:
                out.setdefault(target.rsplit(".", 1)[-1], []).append(func.value)
    return out


def _guard_mentions(program: ProgramModel, call: cst.Call, loop: cst.For, word: str) -> bool:
    for ancestor in program.ancestors(call):
        if ancestor is loop:
            return False
        if isinstance(ancestor, cst.If) and word in program.code_for(ancestor.test):
            return True
    return False
