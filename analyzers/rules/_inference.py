"""Inference helpers, for SAN202: functions that are evaluation code by what they do, whatever their name.

A function that switches a model to ``eval()`` itself and then runs that model forward, without any backward,
optimizer step or ``train()`` before its forward passes, is inference (``translate_sentence``,
``sample_images``, ``caption``): :func:`inference_helpers` gives them as :class:`EvalRegion` candidates, next
to the ones :func:`~._eval_regions.eval_candidates` finds by name. No guess from names is involved.
"""

from __future__ import annotations

from ..flow import BACKWARD, EVAL, FIT, FORWARD, OPT_STEP, TRAIN, Effect, Flow
from ..lookups import same_object
from ..model import FunctionInfo, ProgramModel
from ._eval_regions import EvalRegion

_TRAINING = frozenset({BACKWARD, OPT_STEP, FIT})


def inference_helpers(program: ProgramModel, flow: Flow, regions: list[EvalRegion]) -> list[EvalRegion]:
    """Functions (not methods of an ``nn.Module``, not tests) that call ``model.eval()`` in their own body and
    then run that model, with no training effect and no ``train()`` before a forward; the functions among
    ``regions``, and those holding a loop of ``regions``, are left to them."""
    known = {id(region.node) for region in regions}
    loops = [region.node for region in regions if region.function is None]
    out = []
    for info in program.functions.values():
        node = info.node
        if id(node) in known or info.class_name in program.module_classes or _test_runner_calls(info):
            continue
        effects = flow.scope(node).effects
        if not _infers(effects):
            continue
        if any(any(a is node for a in program.ancestors(loop)) for loop in loops):
            continue  # its loop over evaluation data is judged instead
        out.append(EvalRegion(node, info, effects, program))
    return out


def _test_runner_calls(info: FunctionInfo) -> bool:
    """``test_*`` functions and methods of ``Test*`` classes: pytest and unittest call them (by these names),
    and a test that runs a model in eval mode checks outputs, not memory."""
    return info.node.name.value.startswith("test") or (info.class_name or "").startswith("Test")


def _infers(effects: list[Effect]) -> bool:
    """``model.eval()`` (in the function itself, not through a helper), then forward passes of that model
    only, and nothing that trains or switches back to training before the last of them."""
    if any(e.kind in _TRAINING for e in effects):
        return False
    switched: str | None = None
    forwards = 0
    for e in effects:
        if e.kind == EVAL and e.direct and switched is None:
            switched = e.target
        elif e.kind == TRAIN and _forwards_after(effects, e):
            return False
        elif e.kind == FORWARD:
            if switched is None or not same_object(e.target, switched):
                return False  # a forward before eval(), or of another model
            forwards += 1
    return switched is not None and forwards > 0


def _forwards_after(effects: list[Effect], effect: Effect) -> bool:
    """Whether a forward pass follows ``effect`` in ``effects``."""
    index = next(i for i, e in enumerate(effects) if e is effect)
    return any(e.kind == FORWARD for e in effects[index + 1:])
