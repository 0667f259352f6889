from __future__ import annotations

import libcst as cst

from ..flow import (
    BACKWARD,
    EVAL,
    FORWARD,
    TRAIN,
    EvalRegion,
    call_sites,
    eval_candidates,
    eval_fix_safe,
    flow_of,
    loop_header,
    names_in,
    referenced_otherwise,
)
from ..model import ProgramModel, dotted_name, walk
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE


class EvalWithoutEvalMode(Rule):
    """Validation / test / inference code that runs the model without switching it to `eval()`: a
    function named like `evaluate` / `validate` / `test` / `predict` (not a module's own method), or a
    loop over a validation / test loader, whose forward passes are not preceded by `model.eval()` (or
    `model.train(False)`) — in the code itself, in a helper it calls, or before its call sites."""

    code = "SAN201"
    name = "eval-without-eval-mode"
    message = "the model is evaluated without model.eval(): dropout and batch-norm stay in training mode"
    why = """
        In training mode dropout still drops units and batch-norm normalises with the statistics of the
        current batch (and updates its running averages with validation data). Validation numbers come
        out noisy and pessimistic, depend on the batch size, and the model's statistics drift.
    """
    example = """
        def evaluate(model, loader):
            with torch.no_grad():
                for x, y in loader:
                    correct += (model(x).argmax(1) == y).sum().item()
    """
    fix_doc = """
        Call `model.eval()` before evaluating, and `model.train()` before training again. The quick fix
        inserts `model.eval()` (offered only where training already switches back with `model.train()`).
    """
    known_problems = """
        Evaluation code is recognised by names (`evaluate`, `validate`, `test`, `predict`, validation loaders);
        differently named evaluation code is not seen, and a mode set by a caller the rule cannot read (another
        package, a callback) is assumed to be missing.
    """
    fix_safety = """
        Unsafe: `model.eval()` changes dropout and batch-norm for everything that runs after it, training
        included when nothing switches back. The fix is offered only where training already calls
        `model.train()`, and is still left to `--unsafe-fixes`.
    """
    VALID = [
        "def evaluate(model, loader):\n    model.eval()\n    with torch.no_grad():\n        for x, y in loader:\n            out = model(x)\n",
        # the caller switches the mode
        "def evaluate(model, loader):\n    with torch.no_grad():\n        for x, y in loader:\n            out = model(x)\n\nmodel.eval()\nevaluate(model, val_loader)\n",
        # a helper does it
        "def prepare(m):\n    m.eval()\n\ndef test(model, loader):\n    prepare(model)\n    for x, y in loader:\n        out = model(x)\n",
        # train(flag)
        "for x, y in val_loader:\n    pass\nmodel.train(False)\nwith torch.no_grad():\n    for x, y in val_loader:\n        out = model(x)\n",
        # never called here: the callers (in other modules) decide
        "import torch\n\ndef evaluate(model, loader):\n    with torch.no_grad():\n        for x, y in loader:\n            out = model(x)\n",
        # a module's own predict method
        "import torch.nn as nn\nclass Net(nn.Module):\n    def predict(self, x):\n        return self.net(x).argmax(1)\n",
        # a training loop over the training loader
        "for x, y in train_loader:\n    out = model(x)\n    loss_fn(out, y).backward()\n    opt.step()\n",
    ]
    INVALID = [
        # the model is loaded inside: nobody else can switch its mode
        Invalid(
            "import torch\n\ndef predict(path, images):\n    model = torch.load(path)\n    with torch.no_grad():\n"
            "        return model(images).argmax(1)\n\nprint(predict('m.pt', batch))\n",
            line=3,
        ),
        Invalid(
            "import torch\n\ndef evaluate(model, loader):\n    correct = 0\n    with torch.no_grad():\n        for x, y in loader:\n"
            "            correct += (model(x).argmax(1) == y).sum().item()\n    return correct\n\n"
            "for epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n        opt.zero_grad()\n"
            "        loss_fn(model(x), y).backward()\n        opt.step()\n    evaluate(model, val_loader)\n",
            line=3,
            fixed="import torch\n\ndef evaluate(model, loader):\n    model.eval()\n    correct = 0\n    with torch.no_grad():\n        for x, y in loader:\n"
            "            correct += (model(x).argmax(1) == y).sum().item()\n    return correct\n\n"
            "for epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n        opt.zero_grad()\n"
            "        loss_fn(model(x), y).backward()\n        opt.step()\n    evaluate(model, val_loader)\n",
        ),
        Invalid(
            "for epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n        opt.zero_grad()\n"
            "        loss_fn(model(x), y).backward()\n        opt.step()\n    with torch.no_grad():\n"
            "        for x, y in val_loader:\n            val_loss += loss_fn(model(x), y).item()\n",
            line=8,
            fixed="for epoch in range(10):\n    model.train()\n    for x, y in train_loader:\n        opt.zero_grad()\n"
            "        loss_fn(model(x), y).backward()\n        opt.step()\n    with torch.no_grad():\n"
            "        model.eval()\n        for x, y in val_loader:\n            val_loss += loss_fn(model(x), y).item()\n",
        ),
    ]

    def check(self, model: ProgramModel):
        flow = flow_of(model)
        for region in eval_candidates(model):
            if any(e.kind == EVAL or (e.kind == TRAIN and e.flag is not True) for e in region.effects):
                continue
            if not region.holds():
                continue
            targets = {e.target for e in region.effects if e.kind == FORWARD}
            if region.function is not None:
                result = _check_function(model, flow, region, targets)
            else:
                result = _check_loop(model, flow, region, targets)
            if result is not None:
                yield result if not isinstance(result, tuple) else self.finding(result[0], end_node=result[1], fix=result[2])


def _mode_switch_before(flow, site) -> bool:
    effects = flow.scope_of(site).effects
    for e in effects:
        if e.site is site or any(v is site for v in e.via):
            return False
        if e.kind == EVAL or (e.kind == TRAIN and e.flag is not True):
            return True
    return False


def _check_function(model: ProgramModel, flow, region: EvalRegion, targets):
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
    if "global" in kinds and _any_eval_call(model, model.module):
        return None
    class_or_module = model.classes.get(info.class_name) if info.class_name else model.module
    if "self" in kinds and _any_eval_call(model, class_or_module):
        return None
    sites = call_sites(model, info)
    if not sites or referenced_otherwise(model, info, sites):
        return None  # called from elsewhere: the caller may well switch the mode
    for site in sites:
        if _mode_switch_before(flow, site) or _feeds_backward(model, flow, site):
            return None
    return (func.name, func.name, _function_fix(model, flow, region, targets, sites))


def _any_eval_call(model: ProgramModel, node: cst.CSTNode | None) -> bool:
    """Whether ``node`` (the module, a class) holds an ``x.eval()`` call; the holders are found once per model."""
    holders = model.__dict__.get("_torchsanity_eval_call_holders")
    if holders is None:
        holders = set()
        for call in model.calls:
            func = call.func
            if type(func) is cst.Attribute and func.attr.value == "eval" and not call.args:
                holders.update(id(ancestor) for ancestor in model.ancestors(call))
        model.__dict__["_torchsanity_eval_call_holders"] = holders
    return node is not None and id(node) in holders


def _feeds_backward(model, flow, site) -> bool:
    """The call's result is used in a loss that is backpropagated (it is not evaluation after all)."""
    stmt = model.enclosing_statement(site)
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


def _function_fix(model, flow, region, targets, sites):
    if len(targets) != 1 or not sites:
        return None
    target = next(iter(targets))
    if not target:
        return None
    site_ids = {id(s) for s in sites}
    if not eval_fix_safe(flow, lambda e: any(id(v) in site_ids for v in e.via) or id(e.site) in site_ids):
        return None
    body = region.node.body
    if not isinstance(body, cst.IndentedBlock) or not body.body:
        return None
    first = body.body[0]
    if _is_docstring(first):
        if len(body.body) < 2:
            return None
        first = body.body[1]
    return NodeFix(f"Insert {target}.eval()", (NodeEdit("insert_before", first, f"{target}.eval()"),), UNSAFE)


def _is_docstring(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) \
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


def _check_loop(model: ProgramModel, flow, region: EvalRegion, targets):
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
    return (start, end, _loop_fix(model, flow, loop, targets))


def _loop_fix(model, flow, loop, targets):
    if len(targets) != 1:
        return None
    target = next(iter(targets))
    if not target or dotted_name(cst.parse_expression(target)) != target:
        return None
    if not eval_fix_safe(flow, lambda e: e.inside(loop)):
        return None
    return NodeFix(f"Insert {target}.eval()", (NodeEdit("insert_before", loop, f"{target}.eval()"),), UNSAFE)
