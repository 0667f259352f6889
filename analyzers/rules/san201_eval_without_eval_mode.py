from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import BACKWARD, EVAL, FORWARD, TRAIN
from ..lookups import call_sites, referenced_otherwise
from ..model import ProgramModel
from ..rule import UNSAFE, InsertBefore, Invalid, NodeFix, Rule, Valid
from ..syntax import dotted_name, loop_header, names_in, walk
from ._eval_regions import EvalRegion, eval_candidates, eval_fix_safe


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
        package, a callback) is assumed to be missing. A model whose class is defined in the same file and is
        built only from layers that ignore the mode (no dropout, no batch-norm, no `self.training`) is left
        alone; a model built elsewhere (a loader helper, another package) is assumed to need eval().
    """
    fix_safety = """
        Unsafe: `model.eval()` changes dropout and batch-norm for everything that runs after it, training
        included when nothing switches back. The fix is offered only where training already calls
        `model.train()`, and is still left to `--unsafe-fixes`.
    """
    VALID = [
        Valid("""
            def evaluate(model, loader):
                model.eval()
                with torch.no_grad():
                    for x, y in loader:
                        out = model(x)
        """),
        # the caller switches the mode
        Valid("""
            def evaluate(model, loader):
                with torch.no_grad():
                    for x, y in loader:
                        out = model(x)

            model.eval()
            evaluate(model, val_loader)
        """),
        # a helper does it
        Valid("""
            def prepare(m):
                m.eval()

            def test(model, loader):
                prepare(model)
                for x, y in loader:
                    out = model(x)
        """),
        # train(flag)
        Valid("""
            for x, y in val_loader:
                pass
            model.train(False)
            with torch.no_grad():
                for x, y in val_loader:
                    out = model(x)
        """),
        # never called here: the callers (in other modules) decide
        Valid("""
            import torch

            def evaluate(model, loader):
                with torch.no_grad():
                    for x, y in loader:
                        out = model(x)
        """),
        # a module's own predict method
        Valid("""
            import torch.nn as nn
            class Net(nn.Module):
                def predict(self, x):
                    return self.net(x).argmax(1)
        """),
        # a training loop over the training loader
        Valid("""
            for x, y in train_loader:
                out = model(x)
                loss_fn(out, y).backward()
                opt.step()
        """),
        # a bigram model: no dropout, no batch-norm, so eval() would change nothing
        Valid("""
            import torch.nn as nn
            class Bigram(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.table = nn.Embedding(vocab, vocab)
                def forward(self, idx):
                    return self.table(idx)
            model = Bigram(27)
            for x, y in train_loader:
                loss = model(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            for x, y in val_loader:
                print(model(x))
        """),
    ]
    INVALID = [
        # the model is loaded inside: nobody else can switch its mode
        Invalid(
            """
            import torch

            def predict(path, images):
                model = torch.load(path)
                with torch.no_grad():
                    return model(images).argmax(1)

            print(predict('m.pt', batch))
            """,
            line=3,
        ),
        Invalid(
            """
            import torch

            def evaluate(model, loader):
                correct = 0
                with torch.no_grad():
                    for x, y in loader:
                        correct += (model(x).argmax(1) == y).sum().item()
                return correct

            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model, val_loader)
            """,
            line=3,
            fixed="""
            import torch

            def evaluate(model, loader):
                model.eval()
                correct = 0
                with torch.no_grad():
                    for x, y in loader:
                        correct += (model(x).argmax(1) == y).sum().item()
                return correct

            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model, val_loader)
            """,
        ),
        Invalid(
            """
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                with torch.no_grad():
                    for x, y in val_loader:
                        val_loss += loss_fn(model(x), y).item()
            """,
            line=8,
            fixed="""
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                with torch.no_grad():
                    model.eval()
                    for x, y in val_loader:
                        val_loss += loss_fn(model(x), y).item()
            """,
        ),
        # the same model with dropout needs eval()
        Invalid(
            """
            import torch.nn as nn
            class Bigram(nn.Module):
                def __init__(self, vocab):
                    super().__init__()
                    self.table = nn.Embedding(vocab, vocab)
                    self.drop = nn.Dropout(0.1)
                def forward(self, idx):
                    return self.drop(self.table(idx))
            model = Bigram(27)
            for x, y in train_loader:
                loss = model(x).sum()
                opt.zero_grad()
                loss.backward()
                opt.step()
            for x, y in val_loader:
                print(model(x))
            """,
            line=15,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        for region in eval_candidates(program):
            if any(e.kind == EVAL or (e.kind == TRAIN and e.flag is not True) for e in region.effects):
                continue
            if not region.holds():
                continue
            targets = {e.target for e in region.effects if e.kind == FORWARD}
            if targets and all(_mode_free_model(program, t) for t in targets):
                continue  # built from layers that behave the same in train and eval mode
            if region.function is not None:
                result = _check_function(program, flow, region, targets)
            else:
                result = _check_loop(program, flow, region, targets)
            if result is not None:
                yield result if not isinstance(result, tuple) else self.finding(result[0], end_node=result[1], fix=result[2])


# torch.nn layers whose forward does not depend on train / eval mode (RNNs only without their dropout argument)
_MODE_FREE_LAYERS = frozenset("torch.nn." + name for name in (
    "Linear", "Bilinear", "Embedding", "EmbeddingBag", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
    "ConvTranspose2d", "ConvTranspose3d", "LayerNorm", "GroupNorm", "RMSNorm", "ReLU", "GELU", "SiLU", "Tanh",
    "Sigmoid", "Softmax", "LogSoftmax", "LeakyReLU", "ELU", "Identity", "Flatten", "Unflatten", "MaxPool1d",
    "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Sequential", "ModuleList",
    "ModuleDict", "Parameter", "ParameterList", "RNN", "LSTM", "GRU",
))


def _mode_free_model(program: ProgramModel, target: str | None) -> bool:
    """``target`` is bound only to ``Cls(...)`` of an ``nn.Module`` class of this file built only from layers
    that ignore the mode (no dropout, no batch-norm, no ``self.training``): eval() would change nothing."""
    bindings = program.bindings.get(target or "", ())
    if not bindings:
        return False
    for binding in bindings:
        value = binding.value
        if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
            return False
        if not _mode_free_class(program, value.func.value, set()):
            return False
    return True


def _mode_free_class(program: ProgramModel, name: str, seen: set[str]) -> bool:
    if name in seen:
        return True
    cls = program.classes.get(name)
    if cls is None or name not in program.module_classes:
        return False
    seen.add(name)
    for base in cls.bases:
        base_name = dotted_name(base.value)
        if base_name in program.classes and not _mode_free_class(program, base_name, seen):
            return False
    for node in walk(cls.body):
        if isinstance(node, cst.Attribute) and node.attr.value == "training":
            return False
        if not isinstance(node, cst.Call):
            continue
        qual = program.call_name(node) or ""
        callee = dotted_name(node.func)
        if "dropout" in qual.lower() or "norm" in qual.lower() and not qual.endswith(("LayerNorm", "GroupNorm", "RMSNorm")):
            return False
        if qual.startswith("torch.nn.") and qual.rsplit(".", 1)[-1][:1].isupper():
            if qual not in _MODE_FREE_LAYERS or any(a.keyword is not None and a.keyword.value == "dropout" for a in node.args) \
                    or len([a for a in node.args if a.keyword is None]) > 5:  # LSTM's sixth positional is dropout
                return False
        elif callee is not None and "." not in callee and callee not in _BUILTINS:
            if not _mode_free_class(program, callee, seen):
                return False  # a class or helper the rule cannot see through (it may add dropout)
        elif callee is not None and callee.split(".")[0] in program.imports and not qual.startswith("torch."):
            return False  # a library call (``timm.create_model``) that may build any layer
    return True


_BUILTINS = frozenset({"super", "range", "len", "int", "float", "min", "max", "sum", "abs", "isinstance",
                       "enumerate", "zip", "list", "tuple", "dict", "print", "getattr", "setattr", "hasattr"})


def _mode_switch_before(flow, site) -> bool:
    effects = flow.scope_of(site).effects
    for e in effects:
        if e.site is site or any(v is site for v in e.via):
            return False
        if e.kind == EVAL or (e.kind == TRAIN and e.flag is not True):
            return True
    return False


def _check_function(program: ProgramModel, flow, region: EvalRegion, targets):
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
    sites = call_sites(program, info)
    if not sites or referenced_otherwise(program, info, sites):
        return None  # called from elsewhere: the caller may well switch the mode
    for site in sites:
        if _mode_switch_before(flow, site) or _feeds_backward(program, flow, site):
            return None
    return (func.name, func.name, _function_fix(program, flow, region, targets, sites))


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


def _feeds_backward(program, flow, site) -> bool:
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


def _function_fix(program, flow, region, targets, sites):
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
    return NodeFix(f"Insert {target}.eval()", (InsertBefore(first, f"{target}.eval()"),), UNSAFE)


def _is_docstring(stmt) -> bool:
    return isinstance(stmt, cst.SimpleStatementLine) and len(stmt.body) == 1 and isinstance(stmt.body[0], cst.Expr) \
        and isinstance(stmt.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


def _check_loop(program: ProgramModel, flow, region: EvalRegion, targets):
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
