"""Evaluation code, for the SAN2xx rules (SAN201 / SAN202 / SAN203): where a model is evaluated, and
whether evaluating it without ``eval()`` would differ at all (:func:`eval_changes_nothing`).

A candidate is a function named like evaluation code or a loop over a validation / test loader (both
guesses from names: :mod:`~torchsanity.analyzers.name_guesses`) that runs a forward and never a backward;
:meth:`EvalRegion.holds` then checks that nothing in it asks for gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from ..call_mapping import derives_from_config_trainer
from ..dataflow import dataflow
from ..flow import BACKWARD, EVAL, FIT, FORWARD, OPT_STEP, TRAIN, Effect, Flow, flow_of
from ..lookups import calls_by_callee, enclosing_function, iter_loader_names
from ..model import FunctionInfo, ProgramModel
from ..name_guesses import (
    TRAIN_ROLE,
    asks_for_grad,
    looks_like_eval_function,
    looks_like_eval_loader,
    name_role,
)
from ..syntax import LOOP_TYPES, NAME_OR_ATTRIBUTE, dotted_name, dotted_names_in, nodes_of_types, string_literal, walk
from ..torch_api import CONFIG_HOOKS


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
            if not looks_like_eval_function(info.node.name.value) and not _framework_inference(program, info):
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


def _framework_inference(program: ProgramModel, info: FunctionInfo) -> bool:
    """A method that a configuration framework calls as inference (labml's ``sample()``, between training and
    validation), on a class of this module derived from the framework's training configuration."""
    return info.class_name is not None and CONFIG_HOOKS.get(info.node.name.value, True) is False \
        and derives_from_config_trainer(program, info.class_name)[0]


@dataclass(frozen=True)
class UnswitchedStep:
    """A framework's ``step()`` that runs ``target`` for training and validation batches alike and never sets
    its mode; ``first`` is the body's first statement after the docstring."""

    function: FunctionInfo
    target: str
    first: cst.CSTNode


def unswitched_framework_steps(program: ProgramModel, flow: Flow) -> list[UnswitchedStep]:
    """A configuration framework's ``step()`` (labml's: called for every training and every validation batch,
    ``self.mode.is_train`` telling which, under ``set_grad_enabled(is_train)`` and nothing else) that tells the
    phases apart, runs a model of its class (``self.model(data)``) and never sets a mode — no ``train()`` /
    ``eval()`` anywhere in the class —, in a class of this module derived from the framework's training
    configuration whose model the experiments deriving from it build (no ``@option(Cls.model)`` here): every
    validation batch runs in training mode."""
    out = []
    for info in program.functions.values():
        if info.class_name is None or info.node.name.value not in CONFIG_HOOKS \
                or CONFIG_HOOKS[info.node.name.value] is not None:
            continue
        if not any(name.endswith("mode.is_train") for name in dotted_names_in(info.node.body)):
            continue
        effects = flow.scope(info.node).effects
        targets = {e.target for e in effects if e.kind == FORWARD}
        if len(targets) != 1 or any(e.kind in (EVAL, TRAIN) for e in effects):
            continue
        target = next(iter(targets))
        if target is None or not target.startswith("self.") or target.count(".") != 1:
            continue
        cls = program.classes.get(info.class_name)
        if cls is None or _switches_a_mode(cls) or _built_here_by_option(program, f"{info.class_name}.{target[5:]}") \
                or not derives_from_config_trainer(program, info.class_name)[0]:
            continue
        first = first_statement(info.node)
        if first is not None:
            out.append(UnswitchedStep(info, target, first))
    return out


def _switches_a_mode(cls: cst.ClassDef) -> bool:
    return any(type(node) is cst.Call and type(node.func) is cst.Attribute and node.func.attr.value in ("train", "eval")
               for node in walk(cls.body))


def _built_here_by_option(program: ProgramModel, option: str) -> bool:
    """A function of this module decorated ``@option(Cls.model)`` builds the model: judged where it is built."""
    return any(option in dotted_names_in(decorator.decorator)
               for info in program.functions.values() if info.class_name is None
               for decorator in info.node.decorators)


def first_statement(function: cst.FunctionDef) -> cst.CSTNode | None:
    """The first statement of the function's body after its docstring (where a fix inserts a line), or None
    (a one-line body, or only a docstring)."""
    body = list(function.body.body) if isinstance(function.body, cst.IndentedBlock) else []
    if body and _is_docstring(body[0]):
        body = body[1:]
    return body[0] if body else None


def _is_docstring(statement: cst.CSTNode) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 \
        and isinstance(statement.body[0], cst.Expr) \
        and isinstance(statement.body[0].value, (cst.SimpleString, cst.ConcatenatedString))


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


# torch.nn layers whose forward does not depend on train / eval mode (RNNs only without their dropout argument)
_MODE_FREE_LAYERS = frozenset("torch.nn." + name for name in (
    "Linear", "Bilinear", "Embedding", "EmbeddingBag", "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d",
    "ConvTranspose2d", "ConvTranspose3d", "LayerNorm", "GroupNorm", "RMSNorm", "ReLU", "GELU", "SiLU", "Tanh",
    "Sigmoid", "Softmax", "LogSoftmax", "LeakyReLU", "ELU", "Identity", "Flatten", "Unflatten", "MaxPool1d",
    "MaxPool2d", "AvgPool1d", "AvgPool2d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d", "Sequential", "ModuleList",
    "ModuleDict", "Parameter", "ParameterList", "RNN", "LSTM", "GRU",
))


def eval_changes_nothing(program: ProgramModel, forwards: list[Effect]) -> bool:
    """``model.eval()`` would change nothing the models of the forward passes ``forwards`` compute: each ignores the
    mode (:func:`mode_free_model`), or was loaded in eval mode and nothing switches it back
    (:func:`loaded_in_eval_mode`)."""
    return bool(forwards) and all(mode_free_model(program, e.target, e.site) or loaded_in_eval_mode(program, e.target)
                                  for e in forwards)


# ``from_pretrained`` of these libraries returns the model in eval mode: transformers' PreTrainedModel,
# diffusers' ModelMixin, peft's PeftModel (unless ``is_trainable=True``; peft < 0.3 left new adapters in training)
_EVAL_LOADERS = ("transformers.", "diffusers.", "peft.")
# methods that put a model in training mode: ``model.train()``, a Hugging Face ``Trainer.train()`` or a
# Lightning ``Trainer.fit(model)`` (called on whatever holds them)
_TRAINING_METHODS = frozenset({"train", "fit"})


def loaded_in_eval_mode(program: ProgramModel, target: str | None) -> bool:
    """``target`` is bound only to a Hugging Face ``from_pretrained(...)`` (or to itself moved), which returns the
    model in eval mode, and the module calls no ``train()`` / ``fit()`` on anything."""
    bindings = program.bindings.get(target or "", ())
    if not bound_to_pretrained(program, bindings, target):
        return False
    if any(arg.keyword is not None and arg.keyword.value == "is_trainable"
           and not (isinstance(arg.value, cst.Name) and arg.value.value == "False")
           for binding in bindings if not _moved_itself(binding.value, target) for arg in binding.value.args):
        return False  # peft's adapter loaded to be trained: in training mode
    return not program.cached(_calls_a_training_method)


def bound_to_pretrained(program: ProgramModel, bindings, target: str | None) -> bool:
    """Each of ``bindings`` (of ``target``) is a Hugging Face ``X.from_pretrained(...)`` call (transformers,
    diffusers, peft) or ``target`` moved (``model = model.to(device)``), and there is a load."""
    loaded = False
    for binding in bindings:
        if _moved_itself(binding.value, target):
            continue
        value = binding.value
        qual = (program.qualname(value.func) or "") if isinstance(value, cst.Call) else ""
        if not (qual.startswith(_EVAL_LOADERS) and qual.endswith(".from_pretrained")):
            return False
        loaded = True
    return loaded


def _calls_a_training_method(program: ProgramModel) -> bool:
    return any(type(call.func) is cst.Attribute and call.func.attr.value in _TRAINING_METHODS
               for call in program.calls)


def mode_free_model(program: ProgramModel, target: str | None, site: cst.CSTNode | None = None) -> bool:
    """``target`` is bound only to ``Cls(...)`` of an ``nn.Module`` class of this file or of a module of the project
    it imports, built only from layers that ignore the mode (no dropout, no batch-norm, no ``self.training``), or
    to itself moved (``model = model.to(device)``): eval() would change nothing. A parameter (no binding) is judged
    by what the callers pass, when ``site`` (the call ``target(...)``) is given."""
    bindings = program.bindings.get(target or "", ())
    if not bindings and type(site) is cst.Call and type(site.func) is cst.Name and site.func.value == target:
        found = dataflow(program).definitions(site.func)
        return bool(found) and all(type(value) is cst.Call and type(value.func) is cst.Name
                                   and _mode_free_class_memo(flow.program, value.func.value) for flow, value in found)
    built = False
    for binding in bindings:
        value = binding.value
        if _moved_itself(value, target):
            continue
        if not isinstance(value, cst.Call) or not isinstance(value.func, cst.Name):
            return False
        if not _mode_free_class_memo(program, value.func.value):
            return False
        built = True
    return built


def _mode_free_class_memo(program: ProgramModel, name: str) -> bool:
    """:func:`_mode_free_class`, answered once per class and version of the program."""
    memo = program.cached(_ModeFreeClasses).answers
    if name not in memo:
        memo[name] = _mode_free_class(program, name, set())
    return memo[name]


class _ModeFreeClasses:
    def __init__(self, program: ProgramModel) -> None:
        self.answers: dict[str, bool] = {}


# methods that move or cast a module and return that same module
_MODULE_MOVES = frozenset({"to", "cuda", "cpu", "float", "double", "half", "bfloat16"})


def _moved_itself(value: cst.BaseExpression | None, target: str | None) -> bool:
    """``target.to(device)`` / ``target.cuda()`` (chains of them too)."""
    while isinstance(value, cst.Call) and isinstance(value.func, cst.Attribute) \
            and value.func.attr.value in _MODULE_MOVES:
        value = value.func.value
        if dotted_name(value) == target:
            return True
    return False


def _mode_free_class(program: ProgramModel, name: str, seen: set) -> bool:
    if (id(program), name) in seen:
        return True
    cls = program.classes.get(name)
    if cls is None and name in program.imports:
        return _mode_free_import(program, name, seen)
    if cls is None or name not in program.module_classes:
        return False
    seen.add((id(program), name))
    for base in cls.bases:
        base_name = dotted_name(base.value)
        if base_name in program.classes and not _mode_free_class(program, base_name, seen):
            return False
    handed_in = _handed_in_attributes(program, cls.body)
    submodules = _submodule_loop_names(cls.body, handed_in)
    for node in walk(cls.body):
        if isinstance(node, cst.Attribute) and node.attr.value == "training":
            return False
        if not isinstance(node, cst.Call):
            continue
        qual = program.call_name(node) or ""
        callee = dotted_name(node.func)
        if callee is not None and callee.startswith("self.") and callee.split(".")[1] in handed_in:
            return False  # a module handed in (``self.encoder = encoder``): its layers are not seen here
        if qual.rsplit(".", 1)[-1] in _CONTAINERS and qual.startswith("torch.nn.") and not _built_here(node):
            return False  # ``nn.Sequential(*layers)``: layers built elsewhere
        if callee is not None and (callee.startswith("self.") or callee in submodules):
            continue  # a submodule called (``self.pre_norm(x)``, ``block(x)``): judged where it is built
        last = qual.rsplit(".", 1)[-1].lower()
        if "dropout" in last or "norm" in last and last not in _MODE_FREE_NORMS:
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


_CONTAINERS = frozenset({"Sequential", "ModuleList", "ModuleDict"})
# names with "norm" that do not depend on the mode: normalisation layers without running statistics, norms of
# tensors, initialisers
_MODE_FREE_NORMS = frozenset({
    "layernorm", "groupnorm", "rmsnorm", "layer_norm", "group_norm", "rms_norm", "norm", "vector_norm",
    "matrix_norm", "normalize", "normal", "normal_", "trunc_normal_", "kaiming_normal_", "xavier_normal_",
    "clip_grad_norm_",
})
_MAX_CLASSES = 64  # classes looked through for one model, across the project's modules


def _mode_free_import(program: ProgramModel, name: str, seen: set) -> bool:
    """``name`` is a class imported from a module of the project (not a library) that ignores the mode."""
    if program.project is None or len(seen) > _MAX_CLASSES:
        return False
    try:
        resolved = program.project.resolve(program, name)
    except Exception:  # a broken sibling never breaks this file
        return False
    return resolved is not None and _mode_free_class(resolved[0], resolved[1], seen)


def _submodule_loop_names(body: cst.CSTNode, handed_in: set[str]) -> set[str]:
    """Names bound by ``for block in self.blocks:`` (a loop over a submodule container the class builds itself)."""
    names = set()
    for node in walk(body):
        if isinstance(node, cst.For) and isinstance(node.target, cst.Name):
            source = dotted_name(node.iter) or ""
            if source.startswith("self.") and source.count(".") == 1 and source[5:] not in handed_in:
                names.add(node.target.value)
    return names


def _handed_in_attributes(program: ProgramModel, body: cst.CSTNode) -> set[str]:
    """Attributes ``self.x`` assigned something other than a call or a torch function (a parameter, another
    object's attribute): a module stored that way was built where the class cannot see."""
    names = set()
    for node in walk(body):
        if isinstance(node, cst.Assign) and not isinstance(node.value, cst.Call):
            value = dotted_name(node.value)
            if value is not None and program.imports.get(value.split(".")[0], "").split(".")[0] == "torch":
                continue  # ``self.act = F.relu``
            for target in node.targets:
                name = dotted_name(target.target)
                if name is not None and name.startswith("self.") and name.count(".") == 1:
                    names.add(name[5:])
    return names


def _built_here(container: cst.Call) -> bool:
    """The layers of ``nn.Sequential(...)`` / ``nn.ModuleList([...])`` are calls written in its arguments
    (a list, a comprehension or a dict of calls), so the walk of the class sees each of them."""
    for arg in container.args:
        value = arg.value
        if arg.star or not isinstance(value, (cst.Call, cst.List, cst.Tuple, cst.ListComp, cst.GeneratorExp,
                                               cst.Dict, cst.DictComp)):
            return False
        if isinstance(value, (cst.List, cst.Tuple)) and not all(isinstance(e.value, cst.Call) for e in value.elements):
            return False
        if isinstance(value, (cst.ListComp, cst.GeneratorExp)) and not isinstance(value.elt, cst.Call):
            return False
        if isinstance(value, cst.Dict) and not all(isinstance(getattr(e, "value", None), cst.Call) for e in value.elements):
            return False
        if isinstance(value, cst.DictComp) and not isinstance(value.value, cst.Call):
            return False
    return True


_BUILTINS = frozenset({"super", "range", "len", "int", "float", "min", "max", "sum", "abs", "isinstance",
                       "enumerate", "zip", "list", "tuple", "dict", "print", "getattr", "setattr", "hasattr"})


@dataclass(frozen=True)
class TrainInEvalBranch:
    """``if <training>: m.train() … else: m.train()``: ``calls`` are the non-training branch's ``train()`` calls,
    on modules the training branch also switches to training mode; ``condition`` says training (without a
    ``not``)."""

    condition: cst.BaseExpression
    calls: tuple[cst.Call, ...]


def train_in_eval_branches(program: ProgramModel) -> list[TrainInEvalBranch]:
    """The ``if`` / ``else`` statements whose test says training (``MODE_STATE.is_train``, ``self.training``,
    ``phase == "train"``; ``not …`` swaps the branches) and whose non-training branch switches the same
    modules to training mode as the training branch does, with no ``eval()`` / ``train(False)`` in it: an
    ``eval()`` typed as ``train()`` (the two branches do the same thing). Found from the module's ``train()``
    calls, so only the ``if`` statements that hold one are looked at."""
    out, seen = [], set()
    for call in calls_by_callee(program)[1].get("train", ()):
        statement = program.parent(program.parent(call)) if isinstance(program.parent(call), cst.Expr) else None
        block = program.parent(statement) if isinstance(statement, cst.SimpleStatementLine) else None
        holder = program.parent(block) if block is not None else None
        node = program.parent(holder) if isinstance(holder, cst.Else) else holder
        if isinstance(node, cst.If) and id(node) not in seen:
            seen.add(id(node))
            found = _train_in_eval_branch(node)
            if found is not None:
                out.append(found)
    return out


def _train_in_eval_branch(node: cst.If) -> TrainInEvalBranch | None:
    if not isinstance(node.orelse, cst.Else):
        return None
    test, training, other = node.test, node.body, node.orelse.body
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        test, training, other = test.expression, other, training
    if not _says_training(test):
        return None
    switched = {dotted_name(c.func.value) for c in _mode_calls(training) if _to_training(c)}
    calls = _mode_calls(other)
    if not calls or not all(_to_training(c) for c in calls):
        return None  # the other branch switches to eval somewhere (or not at all)
    repeated = tuple(c for c in calls if dotted_name(c.func.value) in switched)
    return TrainInEvalBranch(test, repeated) if repeated and len(repeated) == len(calls) else None


def _says_training(test: cst.BaseExpression) -> bool:
    """``is_train``, ``args.train``, ``MODE_STATE.is_train`` (a name alone), or ``mode == "train"``: which phase
    this is. Not a module's own ``x.training`` flag, which says what mode it is in (``if not m.training:
    m.train()`` restores training mode on purpose)."""
    name = dotted_name(test)
    if name is not None:
        return name_role(name) == TRAIN_ROLE and not ("." in name and name.rsplit(".", 1)[-1] == "training")
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
            and isinstance(test.comparisons[0].operator, cst.Equal):
        sides = (test.left, test.comparisons[0].comparator)
        return any(name_role(string_literal(side)) == TRAIN_ROLE for side in sides) \
            and any(dotted_name(side) is not None for side in sides)
    return False


def _mode_calls(block: cst.BaseSuite) -> list[cst.Call]:
    """``x.train(...)`` / ``x.eval()`` calls written as statements of ``block``; none when the block holds
    control flow (the mode may then depend on more than this test)."""
    if isinstance(block, cst.SimpleStatementSuite):
        smalls = list(block.body)
    elif all(isinstance(s, cst.SimpleStatementLine) for s in block.body):
        smalls = [small for s in block.body for small in s.body]
    else:
        return []
    calls = [small.value for small in smalls if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call)]
    return [c for c in calls if isinstance(c.func, cst.Attribute) and c.func.attr.value in ("train", "eval")
            and dotted_name(c.func.value) is not None]


def _to_training(call: cst.Call) -> bool:
    """``m.train()`` / ``m.train(True)``."""
    if call.func.attr.value != "train":
        return False
    return not call.args or (len(call.args) == 1 and dotted_name(call.args[0].value) == "True")
