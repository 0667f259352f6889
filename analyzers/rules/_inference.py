"""Inference helpers, for SAN201 / SAN202: functions that are evaluation code by what they do, whatever their name.

A function that switches a model to ``eval()`` itself and then runs that model forward, without any backward,
optimizer step or ``train()`` before its forward passes, is inference (``translate_sentence``,
``sample_images``, ``caption``): :func:`inference_helpers` gives them as :class:`EvalRegion` candidates, next
to the ones :func:`~._eval_regions.eval_candidates` finds by name. :func:`unswitched_helpers` gives the
functions that run one model forward and never touch its mode (SAN201 judges them by the mode their call
sites hand them). No guess from names is involved.
"""

from __future__ import annotations

import libcst as cst

from ..dataflow import dataflow
from ..flow import BACKWARD, EVAL, FIT, FORWARD, OPT_STEP, SEED, TRAIN, Effect, Flow
from ..lookups import calls_by_callee, same_object
from ..model import FunctionInfo, ProgramModel
from ..syntax import dotted_name, dotted_names_in, names_in, walk
from ..torch_api import OPTIMIZER
from ._eval_regions import EvalRegion, bound_to_pretrained

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


def unswitched_helpers(program: ProgramModel, flow: Flow, regions: list[EvalRegion]) -> list[EvalRegion]:
    """Plain functions (not methods, not tests, not among ``regions`` nor holding a loop of ``regions``) that
    run forward passes of one model and nothing else of training: no backward, optimizer step, ``eval()`` or
    ``train()``, in their own body or in a helper they call. Whether they are inference depends on the mode
    their callers hand them; :meth:`EvalRegion.holds` still applies."""
    known = {id(region.node) for region in regions}
    loops = [region.node for region in regions if region.function is None]
    out = []
    for info in program.functions.values():
        node = info.node
        if id(node) in known or info.class_name is not None or _test_runner_calls(info):
            continue
        effects = flow.scope(node).effects
        if not _forwards_one_model(effects):
            continue
        if any(any(a is node for a in program.ancestors(loop)) for loop in loops):
            continue
        out.append(EvalRegion(node, info, effects, program))
    return out


def script_inference_helpers(program: ProgramModel, flow: Flow, regions: list[EvalRegion]) -> list[EvalRegion]:
    """In a script that trains nothing (no backward, optimizer step, ``fit`` or optimizer anywhere), the
    :func:`unswitched_helpers` that run a model of the module's own top level which that top level put in eval
    mode (``model = checkpoint["model"]; model.eval()``, then ``def detect(image): ... model(x)``): inference."""
    evaluated = {e.target for e in flow.scope(program.module).effects
                 if e.kind == EVAL and e.direct and e.target is not None and "." not in e.target}
    if not evaluated or program.names_of_kind(OPTIMIZER):
        return []
    if any(e.kind in _TRAINING or (e.kind == TRAIN and e.target in evaluated)
           for scope in flow.all_scopes() for e in scope.effects):
        return []
    out = []
    for region in unswitched_helpers(program, flow, regions):
        target = next(e.target for e in region.effects if e.kind == FORWARD)
        bindings = program.bindings.get(target, ())
        if target in evaluated and bindings and all(program.enclosing_function(b.node) is None for b in bindings) \
                and target not in dataflow(program).params(region.node):
            out.append(region)
    return out


def pretrained_feature_methods(program: ProgramModel, flow: Flow, regions: list[EvalRegion]) -> list[EvalRegion]:
    """Methods of a plain class (no base class) that run, and only run, a Hugging Face model the class loads
    itself (``self.encoder = AutoModel.from_pretrained(...)``), in a module that trains nothing (no backward,
    optimizer step, ``fit``, optimizer or ``train()``) and never hands that model's parameters on: a frozen
    feature extractor (chunk embeddings for a retrieval index, a sentence encoder), inference whatever its
    name. The model's parameters belong to no network of the project, so nothing else trains them."""
    if program.names_of_kind(OPTIMIZER) or any(e.kind in _TRAINING or e.kind == TRAIN
                                               for scope in flow.all_scopes() for e in scope.effects):
        return []
    known = {id(region.node) for region in regions}
    out = []
    for info in program.functions.values():
        cls = program.classes.get(info.class_name or "")
        if cls is None or id(info.node) in known or _test_runner_calls(info) \
                or any(dotted_name(base.value) != "object" for base in cls.bases):
            continue
        effects = flow.scope(info.node).effects
        if not _forwards_one_model(effects):
            continue
        target = next(e.target for e in effects if e.kind == FORWARD)
        attribute = target[5:] if target.startswith("self.") and target.count(".") == 1 else None
        if attribute and _loaded_pretrained(program, info.class_name, attribute) \
                and not _parameters_handed_on(program, attribute):
            out.append(EvalRegion(info.node, info, effects, program))
    return out


# what an attribute's parameters are handed on by (to an optimizer, to a mode switch)
_PARAMETER_ACCESS = frozenset({"parameters", "named_parameters", "requires_grad_", "train"})


def _loaded_pretrained(program: ProgramModel, class_name: str, attribute: str) -> bool:
    """Every binding of ``self.<attribute>`` in the class's methods is a Hugging Face ``from_pretrained(...)``
    load (or the attribute moved: ``self.model = self.model.to(device)``), and there is one."""
    name, classes = f"self.{attribute}", dataflow(program)
    bindings = [b for b in program.bindings.get(name, ()) if classes.class_of(classes.scope(b.node)) == class_name]
    return bound_to_pretrained(program, bindings, name)


def _parameters_handed_on(program: ProgramModel, attribute: str) -> bool:
    """Some ``<x>.<attribute>.parameters()`` / ``.named_parameters()`` / ``.requires_grad_()`` / ``.train()``
    in the module."""
    by_method = calls_by_callee(program)[1]
    for call in (call for method in _PARAMETER_ACCESS for call in by_method.get(method, ())):
        owner = dotted_name(call.func.value) or ""
        if owner == attribute or owner.endswith(f".{attribute}"):
            return True
    return False


def _forwards_one_model(effects: list[Effect]) -> bool:
    """Forward passes of one model (a name the flow could tell) and maybe seeding: no training, no gradient
    clearing, no scheduler, no mode switch."""
    if any(e.kind not in (FORWARD, SEED) for e in effects):
        return False
    forwards = [e for e in effects if e.kind == FORWARD]
    if not forwards or forwards[0].target is None:
        return False
    return all(same_object(e.target, forwards[0].target) for e in forwards)


def borrowed_eval_mode(program: ProgramModel, flow: Flow, site: cst.Call) -> cst.Call | None:
    """The call (of a helper that runs the model itself, such as ``evaluate(model, loader)``) whose
    ``eval()`` is the mode ``site`` hands the model it runs, when the caller's own code sets no mode since
    the last ``train()``; None when the caller switches the mode itself (``model.eval()``, a ``with``
    context), when the mode is training, unknown, or set by a helper whose job is switching it."""
    effects = flow.scope_of(site).effects
    start = next((i for i, e in enumerate(effects) if e.site is site or any(v is site for v in e.via)), None)
    if start is None:
        return None
    ran = [e.target for e in effects[start:] if e.kind == FORWARD and any(v is site for v in e.via)]
    if not ran or None in ran:
        return None
    modes = [e for e in effects[:start] if e.kind in (EVAL, TRAIN)
             and (e.target is None or any(same_object(e.target, t) for t in ran))]
    last_train = max((i for i, e in enumerate(modes) if e.kind == TRAIN and e.flag is not False), default=-1)
    since_train = modes[last_train + 1:]  # eval() / train(False) only
    if not since_train or any(e.direct or e.target is None for e in since_train):
        return None
    source = since_train[-1].via[0]
    if not any(e.kind == FORWARD and e.via and e.via[0] is source for e in effects):
        return None  # a helper whose job is the mode (``prepare(model)``): switching it is what it is called for
    for ancestor in program.ancestors(site):
        if type(ancestor) is cst.With and any(same_object(name, target) for item in ancestor.items
                                              for name in dotted_names_in(item.item) for target in ran):
            return None  # ``with evaluating(model):`` may switch the mode around the call
    return source


def feeds_backward(program: ProgramModel, flow: Flow, site: cst.Call) -> bool:
    """The call's result is used in a loss that is backpropagated (it is not evaluation after all)."""
    stmt = program.enclosing_statement(site)
    targets = set()
    if isinstance(stmt, cst.SimpleStatementLine):
        for s in stmt.body:
            if isinstance(s, cst.Assign):
                for t in s.targets:
                    targets |= names_in(t.target)
    if not targets:
        return False
    backwarded = set()
    for e in flow.scope_of(site).effects:
        if e.kind == BACKWARD and e.arg is not None:
            backwarded |= names_in(e.arg)
    if targets & backwarded:
        return True
    scope = flow.scope_node(site)
    for node in walk(scope):
        if isinstance(node, cst.Assign) and names_in(node.value) & targets:
            if any(names_in(t.target) & backwarded for t in node.targets):
                return True
    return False


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
