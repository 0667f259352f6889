"""Evaluation code, for the SAN2xx rules (SAN201 / SAN202 / SAN203): where a model is evaluated.

A candidate is a function named like evaluation code or a loop over a validation / test loader (both
guesses from names: :mod:`~torchsanity.analyzers.name_guesses`) that runs a forward and never a backward;
:meth:`EvalRegion.holds` then checks that nothing in it asks for gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from ..flow import BACKWARD, FIT, FORWARD, OPT_STEP, TRAIN, Effect, Flow, flow_of
from ..lookups import enclosing_function, iter_loader_names
from ..model import FunctionInfo, ProgramModel
from ..name_guesses import (
    asks_for_grad,
    looks_like_eval_function,
    looks_like_eval_loader,
)
from ..syntax import LOOP_TYPES, NAME_OR_ATTRIBUTE, nodes_of_types


@dataclass
class EvalRegion:
    node: cst.CSTNode  # the FunctionDef or the loop
    function: FunctionInfo | None
    effects: list[Effect]
    program: ProgramModel
    within: EvalRegion | None = None  # for a loop: the candidate function around it

    def holds(self) -> bool:
        """Whether the candidate is evaluation code: nothing in it asks for gradients, and (a loop) the
        function around it is not evaluation code itself. Walks the region: ask after cheaper checks."""
        return not _needs_grad(self.program, self.node) and not (self.within is not None and self.within.holds())


def _is_test_module(program: ProgramModel) -> bool:
    base = program.path.replace("\\", "/").rsplit("/", 1)[-1]
    return base.startswith("test_") or base.endswith("_test.py") or any(
        q.split(".")[0] in ("pytest", "unittest") for q in program.imports.values())


def eval_candidates(program: ProgramModel) -> list[EvalRegion]:
    """Candidate evaluation code: functions named like evaluate / validate / test / predict, and loops over
    a validation / test loader, that run a model forward and never backpropagate (cached). A candidate is
    evaluation code when :meth:`EvalRegion.holds`."""
    return program.cached(_eval_candidates)


def _eval_candidates(program: ProgramModel) -> list[EvalRegion]:
    flow = flow_of(program)
    regions: list[EvalRegion] = []
    eval_functions: dict[int, EvalRegion] = {}
    if not _is_test_module(program):
        for info in program.functions.values():
            if info.class_name is not None and info.class_name in program.module_classes:
                continue  # a module's own predict(), Lightning's validation_step: the caller / Lightning decides
            if not looks_like_eval_function(info.node.name.value):
                continue
            effects = flow.scope(info.node).effects
            if not _evaluates(effects):
                continue
            region = EvalRegion(info.node, info, effects, program)
            regions.append(region)
            eval_functions[id(info.node)] = region
    for loop in program.loops:
        if type(loop) is not cst.For or not _iterates_eval_data(program, loop):
            continue
        func = enclosing_function(program, loop)
        effects = flow.loop_effects(loop)
        if not _evaluates(effects):
            continue
        if func is not None:
            info = flow.function_info(func)
            if info is not None and info.class_name in program.module_classes:
                continue
        regions.append(EvalRegion(loop, None, effects, program, eval_functions.get(id(func))))
    return regions


def _evaluates(effects: list[Effect]) -> bool:
    kinds = {e.kind for e in effects}
    return FORWARD in kinds and not kinds & {BACKWARD, OPT_STEP, FIT}


def _needs_grad(program: ProgramModel, node: cst.CSTNode) -> bool:
    """Whether the code under ``node`` asks for gradients (``requires_grad``, ``enable_grad``,
    ``register_hook``, ``autograd.grad``); memoized per node."""
    cache = program.cached(_needs_grad_memo)
    key = id(node)
    if key not in cache:
        cache[key] = any(_asks_for_grad(n) for n in nodes_of_types(node, NAME_OR_ATTRIBUTE))
    return cache[key]


def _needs_grad_memo(program: ProgramModel) -> dict[int, bool]:
    return {}


def _asks_for_grad(node: cst.Name | cst.Attribute) -> bool:
    """A name containing ``requires_grad`` / ``enable_grad`` / ``register_hook``, or ``<...autograd>.grad...``."""
    if type(node) is cst.Name:
        return asks_for_grad(node.value)
    if not node.attr.value.startswith("grad"):
        return False
    receiver = node.value
    kind = type(receiver)
    last = receiver.value if kind is cst.Name else receiver.attr.value if kind is cst.Attribute else ""
    return last.endswith("autograd")


def _iterates_eval_data(program: ProgramModel, loop: cst.For) -> bool:
    return any(looks_like_eval_loader(name) for name in iter_loader_names(program, loop.iter))


def eval_fix_safe(flow: Flow, in_region) -> bool:
    """Whether switching the model to eval() inside the region (effects for which ``in_region`` is
    true, in any scope) leaves every later training step after a ``train()``."""
    for scope in flow.all_scopes():
        effects = scope.effects
        idxs = [i for i, e in enumerate(effects) if in_region(e)]
        if not idxs:
            continue
        for e in effects[idxs[-1] + 1:]:
            if e.kind == TRAIN and e.flag is not False:
                break
            if e.kind in (BACKWARD, FIT):
                return False
        loops: list[cst.CSTNode] = []
        for i in idxs:
            for c in effects[i].ctx:
                if isinstance(c, LOOP_TYPES) and all(c is not l for l in loops):
                    loops.append(c)
        for loop in loops:
            for e in effects:
                if not e.inside(loop):
                    continue
                if e.kind == TRAIN and e.flag is not False:
                    break
                if e.kind in (BACKWARD, FIT):
                    return False
    return True
