"""Losses, for the SAN6xx rules: which calls compute which loss, what their prediction input is, and
the fix that drops an activation applied before a loss that applies it itself."""

from __future__ import annotations

from typing import Iterator

import libcst as cst

from .dataflow import Activation, Dataflow, dataflow, same_value
from .lookups import call_name, callee_name
from .model import ProgramModel
from .rule import SAFE, NodeFix, Replace
from .torch_api import LOSS_CLASSES, LOSS_FUNCTIONS


class _LossCalls:
    """The loss calls of one program, once they have all been found."""

    def __init__(self, program: ProgramModel) -> None:
        self.found: list[tuple[cst.Call, str]] | None = None


def loss_calls(flow: Dataflow) -> Iterator[tuple[cst.Call, str]]:
    """The module's calls that compute a loss, with its kind (:func:`loss_of_call`), in order. Found
    once, lazily: the first pass interleaves with its consumer's queries as a plain loop would."""
    memo = flow.program.cached(_LossCalls)
    if memo.found is not None:
        yield from memo.found
        return
    found = []
    for call in flow.program.calls:
        kind = loss_of_call(flow, call) if call.args else None
        if kind is not None:
            found.append((call, kind))
            yield call, kind
    memo.found = found


def loss_of_call(flow: Dataflow, call: cst.Call) -> str | None:
    """CROSS_ENTROPY / NLL / BCE_WITH_LOGITS / BCE when ``call`` computes that loss, else None:
    ``F.cross_entropy(...)``, ``criterion(...)`` with ``criterion = nn.CrossEntropyLoss()``,
    ``nn.NLLLoss()(...)``, ``loss_fn = F.nll_loss; loss_fn(...)``."""
    program = flow.program
    func = call.func
    if type(func) is cst.Call:
        return LOSS_CLASSES.get(call_name(program, func) or "")
    name = callee_name(program, call)
    if name is None:
        return None
    qual = call_name(program, call)
    if qual in LOSS_FUNCTIONS:
        return LOSS_FUNCTIONS[qual]
    if qual is not None and qual.split(".")[0] in ("torch", "numpy", "np") or name.split(".")[0] in program.imports:
        return None
    if "." not in name and name not in program.bindings and name not in flow.parameter_names():
        return None  # a builtin (``len``, ``max``) or a function defined here: no loss object behind it
    defs = flow.definitions(func)
    if not defs:
        return None
    kinds = set()
    for other, value in defs:
        if isinstance(value, cst.Call):
            kinds.add(LOSS_CLASSES.get(other.program.call_name(value) or ""))
        else:
            kinds.add(LOSS_FUNCTIONS.get(other.program.qualname(value) or ""))
    return kinds.pop() if len(kinds) == 1 else None


def loss_input(call: cst.Call) -> cst.Arg | None:
    """The argument that holds the prediction (first positional, or ``input=``)."""
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is None or arg.keyword.value == "input":
            return arg
    return None


def loss_inputs(program: ProgramModel, loss_kind: str):
    """``(flow, call, input argument, activation of that input)`` for every call of a loss of
    ``loss_kind`` in the module; the dataflow is built only when the module calls anything."""
    if not program.calls:
        return
    flow = dataflow(program)
    for call, kind in loss_calls(flow):
        if kind != loss_kind:
            continue
        arg = loss_input(call)
        if arg is not None:
            yield flow, call, arg, flow.activation(arg.value)


def unwrap_activation_fix(flow: Dataflow, arg: cst.Arg, act: Activation, description: str):
    """A fix replacing the loss input by the activation's own input (dropping the softmax / sigmoid), when
    that is exact: the call is the argument itself, or a name bound to it whose input name was not rebound
    in between."""
    if act.call is None or act.source is None or act.program is not flow.program:
        return None
    if act.call is arg.value:
        return NodeFix(description, (Replace(arg.value, flow.program.code_for(act.source)),), SAFE)
    source_name = act.source.value if isinstance(act.source, cst.Name) else None
    if source_name is None or not isinstance(arg.value, cst.Name) or source_name == arg.value.value:
        return None  # `y_hat = softmax(y_hat)`: the logits' name now holds the probabilities
    if not same_value(flow, source_name, act.call, arg.value):
        return None
    return NodeFix(description, (Replace(arg.value, source_name),), SAFE)
