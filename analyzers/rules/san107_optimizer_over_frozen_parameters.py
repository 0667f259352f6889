from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import enclosing_function, named_calls
from ..model import STATEMENT_ONLY, ProgramModel
from ..positions import locate
from ..rule import Invalid, Rule, Valid
from ..syntax import dotted_name, iter_children, names_in, walk
from ..torch_api import OPTIMIZER, kind_of_constructor

# Method calls on a frozen model that leave its parameters and their `requires_grad` as they are.
_KEEPING_METHODS = frozenset({
    "to", "cuda", "cpu", "float", "half", "double", "bfloat16", "eval", "train", "parameters", "named_parameters",
    "modules", "named_modules", "children", "named_children", "state_dict", "load_state_dict", "zero_grad",
    "numel", "size", "keys", "items", "values",
})
# Calls that may take the frozen model as an argument and leave it as it is.
_KEEPING_CALLS = frozenset({
    "print", "len", "sum", "str", "repr", "type", "isinstance", "id", "list", "tuple", "sorted", "next", "iter",
    "torch.compile", "torch.nn.DataParallel", "torch.nn.parallel.DistributedDataParallel",
})
_LOGGING_METHODS = frozenset({"info", "debug", "warning", "log", "write", "format"})
# Helpers whose names say they change what trains.
_UNFREEZING_WORDS = ("unfreeze", "thaw", "requires_grad", "trainable", "set_grad", "toggle_optimizer", "peft", "lora")


def _is_false(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "False"


def _freeze_argument(call: cst.Call) -> bool:
    """``requires_grad_(False)`` / ``requires_grad_(requires_grad=False)``."""
    return len(call.args) == 1 and _is_false(call.args[0].value) and (
        call.args[0].keyword is None or call.args[0].keyword.value == "requires_grad")


def _receiver(expr: cst.BaseExpression) -> str | None:
    """The module a chain such as ``model.eval().to(device)`` acts on (``model``)."""
    while isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
            and expr.func.attr.value in _KEEPING_METHODS:
        expr = expr.func.value
    return dotted_name(expr)


def _parameters_of(expr: cst.BaseExpression) -> str | None:
    """``X`` for ``X.parameters()`` (or ``list(X.parameters())``), else None."""
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "list" \
            and len(expr.args) == 1:
        expr = expr.args[0].value
    if isinstance(expr, cst.Call) and not expr.args and isinstance(expr.func, cst.Attribute) \
            and expr.func.attr.value == "parameters":
        return _receiver(expr.func.value)
    return None


def _optimized_modules(call: cst.Call) -> list[str] | None:
    """The modules whose parameters an optimizer is built over: ``opt(X.parameters())`` or param groups
    ``opt([{"params": X.parameters(), ...}, ...])``; None when anything else is passed."""
    params = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "params"), None)
    if params is None:
        first = call.args[0] if call.args else None
        if first is None or first.keyword is not None or first.star:
            return None
        params = first.value
    owner = _parameters_of(params)
    if owner is not None:
        return [owner]
    if not isinstance(params, (cst.List, cst.Tuple)) or not params.elements:
        return None
    owners = []
    for element in params.elements:
        group = element.value
        if not isinstance(group, cst.Dict):
            return None
        value = next((e.value for e in group.elements if isinstance(e, cst.DictElement)
                      and isinstance(e.key, cst.SimpleString) and e.key.evaluated_value == "params"), None)
        owner = _parameters_of(value) if value is not None else None
        if owner is None or any(not isinstance(e, cst.DictElement) for e in group.elements):
            return None
        owners.append(owner)
    return owners


def _frozen_module(statement: cst.CSTNode) -> str | None:
    """The module whose parameters all become frozen by ``statement``: ``X.requires_grad_(False)``,
    ``X = ....requires_grad_(False)``, or a loop ``for p in X.parameters(): p.requires_grad = False``
    (or ``p.requires_grad_(False)``) that skips none of them."""
    if isinstance(statement, cst.For):
        return _frozen_by_loop(statement)
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return None
    small = statement.body[0]
    value = small.value if isinstance(small, (cst.Expr, cst.Assign)) else None
    if not (isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute)
            and value.func.attr.value == "requires_grad_" and _freeze_argument(value)):
        return None
    if isinstance(small, cst.Assign):
        return dotted_name(small.targets[0].target) if len(small.targets) == 1 else None
    return _receiver(value.func.value)


def _frozen_by_loop(loop: cst.For) -> str | None:
    owner, target = None, loop.target
    if isinstance(loop.iter, cst.Call) and not loop.iter.args and isinstance(loop.iter.func, cst.Attribute):
        method = loop.iter.func.attr.value
        if method == "named_parameters" and isinstance(target, cst.Tuple) and len(target.elements) == 2:
            target = target.elements[1].value
            owner = _receiver(loop.iter.func.value)
        elif method == "parameters":
            owner = _receiver(loop.iter.func.value)
    if owner is None or not isinstance(target, cst.Name) or loop.orelse is not None:
        return None
    if any(isinstance(n, (cst.Continue, cst.Break, cst.Return, cst.Raise)) for n in walk(loop.body)):
        return None  # some parameters may be skipped
    body = loop.body.body
    for statement in body:
        smalls = statement.body if isinstance(statement, cst.SimpleStatementLine) else (statement,)
        for small in smalls:
            if isinstance(small, cst.Assign) and len(small.targets) == 1 and _is_false(small.value):
                aim = small.targets[0].target
                if isinstance(aim, cst.Attribute) and aim.attr.value == "requires_grad" and dotted_name(aim.value) == target.value:
                    return owner
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) and _freeze_argument(small.value) \
                    and dotted_name(small.value.func) == f"{target.value}.requires_grad_":
                return owner
    return None


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + ".")


def _unfreezes(node: cst.CSTNode) -> bool:
    """Whether ``node`` may make parameters trainable: ``x.requires_grad = <not False>``,
    ``x.requires_grad_()`` / ``(True)``, ``setattr(x, "requires_grad", …)`` or a helper named so."""
    if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign)):
        targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
        return any(isinstance(t, cst.Attribute) and t.attr.value == "requires_grad" for t in targets) \
            and not (node.value is not None and _is_false(node.value) and not isinstance(node, cst.AugAssign))
    if isinstance(node, cst.Call):
        func = node.func
        last = (func.attr.value if isinstance(func, cst.Attribute) else dotted_name(func) or "").lower()
        if last == "requires_grad_":
            return not _freeze_argument(node)
        if last == "setattr":
            return True
        return any(word in last for word in _UNFREEZING_WORDS)
    return False


def _freeze_words(program: ProgramModel, statement: cst.CSTNode) -> tuple[bool, bool]:
    """Whether ``statement`` mentions ``requires_grad`` and whether it may make parameters trainable. A statement
    with no ``.requires_grad`` / ``.requires_grad_`` and no call that may unfreeze is not walked."""
    if not program.statement_attributes(statement) & {"requires_grad", "requires_grad_"}:
        return False, any(_unfreezes(call) for call in program.statement_calls(statement))
    mentions = False
    for node in walk(statement):
        if _unfreezes(node):
            return True, True
        if isinstance(node, cst.Attribute) and node.attr.value in ("requires_grad", "requires_grad_"):
            mentions = True
    return mentions, False


def _nothing_frozen_or_something_unfrozen(program: ProgramModel) -> bool:
    """Whether the file never mentions ``requires_grad``, or somewhere may make parameters trainable."""
    words = program.per_statement_of(_freeze_words, STATEMENT_ONLY)
    return any(unfreezes for _, unfreezes in words) or not any(mentions for mentions, _ in words)


class OptimizerOverFrozenParameters(Rule):
    """An optimizer built over the parameters of a module that were all frozen just before
    (`requires_grad = False` in a loop over `X.parameters()`, or `X.requires_grad_(False)`), in the same
    function, with nothing made trainable again: nothing will train."""

    code = "SAN107"
    name = "optimizer-over-frozen-parameters"
    message = "this optimizer holds only frozen parameters (requires_grad=False): nothing will train"
    why = """
        Frozen parameters get no gradient, and an optimizer skips parameters whose `.grad` is None: the
        training loop runs, the loss is computed and printed, but no weight ever changes. It is the classic
        fine-tuning slip: the whole network is frozen *after* the new head was attached (so the head is
        frozen too), or the optimizer is handed the frozen backbone instead of the head.
    """
    example = """
        model = torchvision.models.resnet18(weights="DEFAULT")
        model.fc = nn.Linear(model.fc.in_features, 10)
        for param in model.parameters():          # freezes the new head too
            param.requires_grad = False
        optimizer = optim.SGD(model.parameters(), lr=1e-3)   # SAN107
    """
    fix_doc = """
        Freeze the pretrained part first and attach the new head afterwards (its parameters are created
        trainable), or unfreeze what should train (`model.fc.requires_grad_(True)`), and build the optimizer
        over the trainable parameters: `optim.SGD(model.fc.parameters(), ...)` or
        `optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), ...)`.
    """
    known_problems = """
        Only freezes written in the same function (or at module level) before the optimizer are seen: a
        `freeze(model)` helper, a freeze in `__init__` with the optimizer in `configure_optimizers`, or one
        guarded by a flag (`if args.freeze:`) that the optimizer is not guarded by, is not followed. The rule
        stays silent as soon as anything may make parameters trainable again: any `requires_grad = True` /
        `requires_grad_()` in the file (gradual unfreezing after the optimizer is built is fine), a helper
        whose name says so (`unfreeze`, `set_requires_grad`, LoRA / PEFT), a module assigned into the frozen
        model (`model.fc = nn.Linear(...)`, a new trainable head), or an unknown call that takes the model.
    """
    fix_safety = """
        There is no fix: which parameters should train (the new head, the last blocks, all of them) is a
        decision only the author can make.
    """
    VALID = [
        # torchvision fine-tuning tutorial: freeze everything, then the new head is created trainable.
        Valid("""
            import torch.nn as nn
            import torch.optim as optim
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            for param in model.parameters():
                param.requires_grad = False
            model.fc = nn.Linear(model.fc.in_features, 10)
            optimizer = optim.SGD(model.fc.parameters(), lr=1e-3, momentum=0.9)
        """),
        Valid("""
            import torch.nn as nn
            import torch.optim as optim
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            for param in model.parameters():
                param.requires_grad = False
            model.fc = nn.Linear(512, 10)
            optimizer = optim.SGD(model.parameters(), lr=1e-3)
        """),
        # freeze everything, unfreeze the last block, optimize what trains
        Valid("""
            import torch
            model.requires_grad_(False)
            model.layer4.requires_grad_(True)
            optimizer = torch.optim.AdamW(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-4)
        """),
        Valid("""
            import torch
            for p in model.parameters():
                p.requires_grad = False
            for p in model.classifier.parameters():
                p.requires_grad = True
            optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        """),
        # the freeze depends on a flag, the optimizer does not: cannot tell
        Valid("""
            import torch
            if args.freeze_backbone:
                for p in model.parameters():
                    p.requires_grad = False
            optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        """),
        # distillation: the teacher is frozen, the student trains
        Valid("""
            import torch
            teacher.requires_grad_(False)
            teacher.eval()
            optimizer = torch.optim.Adam(student.parameters(), lr=1e-3)
        """),
        # no_grad does not freeze anything
        Valid("""
            import torch
            with torch.no_grad():
                model.fc.weight.zero_()
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """),
        # only the backbone is frozen; the optimizer holds the head as well
        Valid("""
            import torch
            for p in model.backbone.parameters():
                p.requires_grad = False
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """),
        # some parameters are skipped by the freeze loop
        Valid("""
            import torch
            for name, p in model.named_parameters():
                if not name.startswith("fc."):
                    p.requires_grad = False
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        """),
        # gradual unfreezing later on: the optimizer already holds every parameter
        Valid("""
            import torch
            for p in model.encoder.parameters():
                p.requires_grad = False
            optimizer = torch.optim.Adam(model.encoder.parameters(), lr=1e-4)
            for epoch in range(10):
                if epoch == 3:
                    model.encoder.requires_grad_(True)
                train_one_epoch(model, optimizer)
        """),
        # LoRA / PEFT add trainable adapters to the frozen model
        Valid("""
            import torch
            from peft import get_peft_model
            model.requires_grad_(False)
            model = get_peft_model(model, lora_config)
            optimizer = torch.optim.AdamW(model.parameters(), lr=2e-4)
        """),
        # frozen after the optimizer is built (then unfrozen by a schedule elsewhere): not this rule's case
        Valid("""
            import torch
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model.backbone.requires_grad_(False)
        """),
    ]
    INVALID = [
        # the new head was attached before the freeze: it is frozen too
        Invalid("""
            import torch.nn as nn
            import torch.optim as optim
            import torchvision
            model = torchvision.models.resnet18(weights="DEFAULT")
            model.fc = nn.Linear(model.fc.in_features, 10)
            for param in model.parameters():
                param.requires_grad = False
            optimizer = optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        """, line=8),
        # the optimizer was handed the frozen backbone instead of the head
        Invalid("""
            import torch
            for p in model.backbone.parameters():
                p.requires_grad = False
            optimizer = torch.optim.Adam(model.backbone.parameters(), lr=1e-4)
        """, line=4),
        Invalid("""
            from torch.optim import AdamW
            encoder.eval().requires_grad_(False)
            optimizer = AdamW(encoder.parameters(), lr=3e-5)
        """, line=3),
        Invalid("""
            import torch
            def fit(model, loader, epochs):
                model.requires_grad_(False)
                model.to("cuda")
                optimizer = torch.optim.SGD(
                    [{"params": model.features.parameters(), "lr": 1e-4},
                     {"params": model.classifier.parameters()}],
                    lr=1e-2,
                )
                return optimizer
        """, line=5),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        orders: dict[int, tuple[list[cst.CSTNode], dict[int, int]]] = {}
        unfrozen: list[bool] = []
        for call, qual in named_calls(program):
            if kind_of_constructor(qual) != OPTIMIZER:
                continue
            owners = _optimized_modules(call)
            if not owners:
                continue
            if not unfrozen:
                unfrozen.append(_nothing_frozen_or_something_unfrozen(program))
            if unfrozen[0]:
                return
            scope = enclosing_function(program, call) or program.module
            if id(scope) not in program.cached(_scopes_with_freezes):
                continue
            if id(scope) not in orders:
                orders[id(scope)] = _scope_order(scope)
            freezes = [_freeze_for(program, call, owner, *orders[id(scope)]) for owner in owners]
            if all(f is not None for f in freezes):
                yield self.finding(call.func, message=_message(program, owners, freezes))


def _freezes_in(statement: cst.CSTNode) -> list[cst.CSTNode]:
    """The statements inside ``statement`` (itself included) that freeze a whole module."""
    return [node for node in walk(statement)
            if isinstance(node, (cst.SimpleStatementLine, cst.For)) and _frozen_module(node) is not None]


def _scopes_with_freezes(program: ProgramModel) -> set[int]:
    """The ids of the functions (or the module) that hold a freeze of their own."""
    return {id(enclosing_function(program, freeze) or program.module)
            for freezes in program.per_statement(_freezes_in) for freeze in freezes}


def _scope_order(scope: cst.CSTNode) -> tuple[list[cst.CSTNode], dict[int, int]]:
    """The nodes of a function (or the module) in source order, nested functions and classes left out,
    and each node's index."""
    order: list[cst.CSTNode] = []
    stack = list(reversed(list(iter_children(scope))))
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            continue
        order.append(node)
        stack.extend(reversed(list(iter_children(node))))
    return order, {id(node): i for i, node in enumerate(order)}


def _freeze_for(program: ProgramModel, call: cst.Call, owner: str,
                order: list[cst.CSTNode], index: dict[int, int]) -> tuple[cst.CSTNode, str] | None:
    """The last statement before ``call``, in a block that encloses it, that froze every parameter of
    ``owner``, when nothing between them may have changed the frozen module; else None."""
    at = index.get(id(call))
    if at is None:
        return None
    enclosing = {id(a) for a in program.ancestors(call)}
    for i in range(at - 1, -1, -1):
        statement = order[i]
        if not isinstance(statement, (cst.SimpleStatementLine, cst.For)):
            continue
        frozen = _frozen_module(statement)
        if frozen is None or not _under(owner, frozen):
            continue
        if id(program.parent(statement)) not in enclosing:
            return None  # frozen in a branch or a loop the optimizer is not in
        inside = {id(n) for n in walk(statement)}
        holder = program.enclosing_statement(call)
        skipped = {id(n) for n in walk(holder)} if isinstance(holder, cst.SimpleStatementLine) else set()
        between = [n for n in order[i + 1:at] if id(n) not in inside and id(n) not in skipped and id(n) not in enclosing]
        if _changes(program, between, frozen.split(".")[0], frozen):
            return None
        return statement, frozen
    return None


def _changes(program: ProgramModel, nodes: list[cst.CSTNode], root: str, frozen: str) -> bool:
    """Whether any of ``nodes`` may change the module rooted at ``root``: a store into it, a method call
    on it or a call taking it that is not known to keep its parameters, or a call of a helper of this
    file that uses it."""
    for node in nodes:
        if isinstance(node, cst.For) and root in names_in(node.iter) and _parameters_of(node.iter) is None \
                and not (isinstance(node.iter, cst.Call) and isinstance(node.iter.func, cst.Attribute)
                         and node.iter.func.attr.value == "named_parameters"):
            return True  # `for m in model.modules(): m.weight = nn.Parameter(...)`
        if isinstance(node, (cst.Assign, cst.AnnAssign)) and node.value is not None:
            alias = _receiver(node.value)
            if alias is not None and _under(alias, root) and not _wraps(program, node.value, _stored_path(
                    node.targets[0].target if isinstance(node, cst.Assign) else node.target) or ""):
                return True  # `net = model`: changes through `net` would not be seen
        if isinstance(node, (cst.Assign, cst.AugAssign, cst.AnnAssign, cst.Del)):
            targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
            for target in targets:
                stored = _stored_path(target)
                if stored is None:
                    if root in names_in(target):
                        return True
                    continue
                if not _under(stored, root):
                    continue
                # `model = model.to(device)` / `model = DDP(model)` keep the parameters
                if isinstance(node, cst.Assign) and _under(frozen, stored) and _wraps(program, node.value, stored):
                    continue
                return True
        elif isinstance(node, cst.Call):
            callee = dotted_name(node.func)
            if isinstance(node.func, cst.Attribute):
                receiver = _receiver(node.func.value)
                if receiver is not None and _under(receiver, root) and node.func.attr.value not in _KEEPING_METHODS:
                    return True
            if not any(root in names_in(a.value) for a in node.args):
                if callee in program.functions and root in names_in(program.functions[callee].node):
                    return True
                continue
            qual = program.call_name(node)
            last = (callee or "").rsplit(".", 1)[-1]
            if qual not in _KEEPING_CALLS and last not in _LOGGING_METHODS:
                return True
    return False


def _stored_path(target: cst.BaseExpression) -> str | None:
    """The dotted path a store writes into (``model.classifier`` for ``model.classifier[6] = …``)."""
    while isinstance(target, cst.Subscript):
        target = target.value
    return dotted_name(target)


def _wraps(program: ProgramModel, value: cst.BaseExpression, name: str) -> bool:
    if _receiver(value) == name:
        return True
    return isinstance(value, cst.Call) and program.call_name(value) in _KEEPING_CALLS and bool(value.args) \
        and _receiver(value.args[0].value) == name


def _message(program: ProgramModel, owners: list[str], freezes: list[tuple[cst.CSTNode, str]]) -> str:
    held = ", ".join(f"`{owner}.parameters()`" for owner in owners)
    statements = [statement for statement, _ in freezes]
    if program.path.endswith(".ipynb"):
        where = ""  # the joined program's lines are not the notebook's
    else:
        ranges = locate(program, statements)
        lines = sorted({ranges[s].start.line for s in statements if s in ranges})
        where = f" on line {', '.join(map(str, lines))}" if lines else ""
    frozen = " and ".join(dict.fromkeys(f"`{name}`" for _, name in freezes))
    return (f"this optimizer is built over {held}, but every parameter of {frozen} was frozen "
            f"(requires_grad=False){where} and none is made trainable again: nothing will train")
