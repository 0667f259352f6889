"""The decisions of SAN201 on one evaluation region: a function or a loop that runs a model for evaluation
without switching it to eval mode (whether its callers or the code before it do), and the fix that inserts
``model.eval()`` where it belongs."""

from __future__ import annotations

import libcst as cst

from ..flow import BACKWARD, EVAL, TRAIN
from ..lookups import call_sites, names_by_value, referenced_otherwise
from ..model import ProgramModel
from ..rule import UNSAFE, InsertBefore, NodeFix, Replace
from ..syntax import dotted_name, loop_header, walk
from ._eval_regions import EvalRegion, TrainInEvalBranch, UnswitchedStep, eval_fix_safe, first_statement
from ._inference import borrowed_eval_mode, feeds_backward


def _mode_switch_before(flow, site) -> bool:
    effects = flow.scope_of(site).effects
    for e in effects:
        if e.site is site or any(v is site for v in e.via):
            return False
        if e.kind == EVAL or (e.kind == TRAIN and e.flag is not True):
            return True
    return False


def check_function(program: ProgramModel, flow, region: EvalRegion, targets):
    info = region.function
    func = info.node
    params = {p.name.value for p in list(func.params.params) + list(func.params.posonly_params) + list(func.params.kwonly_params)}
    locals_ = set()
    for node in walk(func.body):
        if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name):
            locals_.add(node.target.value)
    kinds = set()
    for t in targets:
        if not t:
            continue
        head = t.split(".")[0]
        kinds.add("param" if head in params and head != "self" else "self" if head == "self" else "local" if head in locals_ else "global")
    if not kinds:
        return None
    if "global" in kinds and _any_eval_call(program, program.module):
        return None
    class_or_module = program.classes.get(info.class_name) if info.class_name else program.module
    if "self" in kinds and _any_eval_call(program, class_or_module):
        return None
    handed = ui_handlers(program, info)
    sites = call_sites(program, info) + [call for call, _ in handed]
    if not sites or referenced_otherwise(program, info, sites, tuple(name for _, name in handed)):
        return None  # called from elsewhere: the caller may well switch the mode
    for site in sites:
        if _mode_switch_before(flow, site) or feeds_backward(program, flow, site):
            return None
    return (func.name, func.name, function_fix(program, flow, region, targets, sites))


# web UIs that call the function they are handed each time someone uses the page, after the module has run
_UI_FRAMEWORKS = frozenset({"gradio.Interface", "gradio.ChatInterface"})


def ui_handlers(program: ProgramModel, info) -> list[tuple[cst.Call, cst.Name]]:
    """The calls that hand the plain function ``info`` to a web UI (``gr.Interface(fn=predict)``,
    ``gr.ChatInterface(predict)``), with the name handed: the UI calls it with the model as the module left it."""
    if info.class_name is not None or not any(target.split(".")[0] == "gradio" for target in program.imports.values()):
        return []
    handed = []
    for name in names_by_value(program).get(info.node.name.value, ()):
        arg = program.parent(name)
        call = program.parent(arg) if isinstance(arg, cst.Arg) else None
        if not isinstance(call, cst.Call) or program.qualname(call.func) not in _UI_FRAMEWORKS:
            continue
        if arg.keyword is not None and arg.keyword.value == "fn" or arg.keyword is None and call.args[0] is arg:
            handed.append((call, name))
    return handed


def _any_eval_call(program: ProgramModel, node: cst.CSTNode | None) -> bool:
    """Whether ``node`` (the module, a class) holds an ``x.eval()`` call; the holders are found once per program."""
    return node is not None and id(node) in program.cached(_eval_call_holders)


def _eval_call_holders(program: ProgramModel) -> set[int]:
    holders: set[int] = set()
    for call in program.calls:
        func = call.func
        if type(func) is cst.Attribute and func.attr.value == "eval" and not call.args:
            holders.update(id(ancestor) for ancestor in program.ancestors(call))
    return holders


def function_fix(program, flow, region, targets, sites):
    if len(targets) != 1 or not sites:
        return None
    target = next(iter(targets))
    if not target:
        return None
    site_ids = {id(s) for s in sites}
    if not eval_fix_safe(flow, lambda e: any(id(v) in site_ids for v in e.via) or id(e.site) in site_ids):
        return None
    first = first_statement(region.node)
    if first is None:
        return None
    return NodeFix(f"Insert {target}.eval()", (InsertBefore(first, f"{target}.eval()"),), UNSAFE)


def check_loop(program: ProgramModel, flow, region: EvalRegion, targets):
    loop = region.node
    effects = flow.scope_of(loop).effects
    before = []
    for e in effects:
        if e.inside(loop):
            break
        before.append(e)
    modes = [e for e in before if e.kind in (EVAL, TRAIN)]
    if modes:
        last = modes[-1]
        if last.kind == EVAL or last.flag is not True:
            return None
    else:
        if not any(e.kind == BACKWARD for e in effects):
            return None  # no training here: the mode comes from elsewhere
    if any(e.kind in (EVAL, TRAIN) and e.inside(loop) for e in effects):
        return None
    start, end = loop_header(loop)
    return (start, end, _loop_fix(program, flow, loop, targets))


def _loop_fix(program, flow, loop, targets):
    if len(targets) != 1:
        return None
    target = next(iter(targets))
    if not target or dotted_name(cst.parse_expression(target)) != target:
        return None
    if not eval_fix_safe(flow, lambda e: e.inside(loop)):
        return None
    return NodeFix(f"Insert {target}.eval()", (InsertBefore(loop, f"{target}.eval()"),), UNSAFE)


def unswitched_step(step: UnswitchedStep) -> tuple:
    """The finding on a framework's ``step()`` that validates in training mode: ``(node, message, fix)``."""
    message = (f"the framework calls step() for validation batches too, and nothing switches {step.target} to "
               "eval mode: validation runs with dropout and batch-norm in training mode (set the mode from the "
               "phase at the top of the step)")
    fix = NodeFix(f"Set {step.target}'s mode from the phase",
                  (InsertBefore(step.first, f"{step.target}.train(self.mode.is_train)"),), UNSAFE)
    return step.function.node.name, message, fix


def train_in_eval_branch(program: ProgramModel, branch: TrainInEvalBranch) -> tuple:
    """``if is_train: m.train() else: m.train()``: the finding on the non-training branch's first call."""
    names = ", ".join(dict.fromkeys(dotted_name(c.func.value) for c in branch.calls))
    message = (f"where `{program.code_for(branch.condition)}` is false, this branch switches {names} to training "
               "mode as the training branch does: evaluation there runs with dropout and batch-norm in training "
               "mode (eval() was meant)")
    fix = NodeFix("Switch to eval() in this branch", tuple(Replace(c.func.attr, "eval") for c in branch.calls), UNSAFE)
    return branch.calls[0], message, fix


def borrowed_mode(program: ProgramModel, flow, region: EvalRegion, targets) -> tuple | None:
    """The finding on an inference helper whose eval mode, at every call site, is only what another
    function (``evaluate()``) left behind; None when some call site does not borrow it."""
    info = region.function
    if info.class_name is not None or len(targets) != 1:
        return None
    sites = call_sites(program, info)
    if not sites or referenced_otherwise(program, info, sites):
        return None  # callers it cannot see may switch the mode
    sources = []
    for site in sites:
        source = None if feeds_backward(program, flow, site) else borrowed_eval_mode(program, flow, site)
        if source is None:
            return None
        sources.append(source)
    helper, target = info.node.name.value, next(iter(targets))
    names = sorted({dotted_name(source.func) or "a helper" for source in sources})
    message = (f"{helper}() runs {target} without {target}.eval(): its eval mode is only what "
               f"{'() / '.join(names)}() left behind, so after any training step dropout and batch-norm "
               "are in training mode")
    return info.node.name, message, function_fix(program, flow, region, targets, sites)
