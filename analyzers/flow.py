"""The training-loop model: what a loop or function *does*, in order.

For every scope (the module's top-level code, each function body) :class:`Flow` lists the effects that
matter to training-loop rules, in execution order: ``backward`` / optimizer ``step`` / ``zero_grad`` /
scheduler ``step`` / ``eval()`` / ``train()`` / model forwards / seeding calls. Helpers count where they
are called: a call to a function or method of the same module (or of a sibling module, through
``model.project``) is replaced by that function's effects, with its parameters mapped to the caller's
arguments. Each effect carries its context: the compound statements (loops, ifs, withs, ...) that enclose
it, from the scope down, including the helper call sites it was inlined through, so rules ask "is this
inside that loop / under an `if` / under `torch.no_grad()`" with identity checks on nodes.

Built lazily, once per :class:`ProgramModel` (see :func:`flow_of`), without libcst visitors or metadata.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Iterator

import libcst as cst

from .model import (
    DATALOADER,
    MODEL,
    OPTIMIZER,
    SCHEDULER,
    FunctionInfo,
    ProgramModel,
    dotted_name,
    iter_children,
    walk,
)

BACKWARD = "backward"
OPT_STEP = "opt_step"
ZERO_GRAD = "zero_grad"
SCHED_STEP = "sched_step"
EVAL = "eval"
TRAIN = "train"
FORWARD = "forward"
SEED = "seed"
FIT = "fit"  # Lightning `trainer.fit(...)`: training happens in the library
_HELPER = "helper"  # a call of a function of ours: its effects are inlined

# Context nodes recorded for effects (relative to their scope).
_CTX_TYPES = (
    cst.For,
    cst.While,
    cst.If,
    cst.Else,
    cst.With,
    cst.Try,
    cst.TryStar,
    cst.ExceptHandler,
    cst.ExceptStarHandler,
    cst.Finally,
    cst.Match,
)
LOOP_TYPES = (cst.For, cst.While)
# Methods whose calls may be effects themselves (``loss.backward()``, ``opt.step()``, ``model.eval()``, ...).
_EFFECT_METHODS = frozenset({"backward", "manual_backward", "step", "zero_grad", "zero_", "fill_", "detach_", "eval",
                             "train", "fit"})
_CTX_SET = frozenset(_CTX_TYPES)
_ASSIGN_TYPES = frozenset({cst.Assign, cst.AugAssign, cst.AnnAssign})
_CLEARING_TYPES = _ASSIGN_TYPES | {cst.Del}  # statements that may clear `.grad`
_NAME = frozenset({cst.Name})
_NAME_OR_ATTRIBUTE = frozenset({cst.Name, cst.Attribute})
CONDITIONAL_TYPES = (cst.If, cst.Else, cst.Try, cst.TryStar, cst.ExceptHandler, cst.ExceptStarHandler,
                     cst.Match, cst.For, cst.While)

_NO_GRAD_CONTEXTS = frozenset(
    {"torch.no_grad", "torch.inference_mode", "torch.autograd.no_grad", "torch.autograd.grad_mode.no_grad",
     "torch.autograd.inference_mode"}
)
_SET_GRAD = frozenset({"torch.set_grad_enabled", "torch.autograd.set_grad_enabled"})
_ENABLE_GRAD = frozenset({"torch.enable_grad", "torch.autograd.enable_grad"})

_TORCH_SEEDS = frozenset(
    {"torch.manual_seed", "torch.cuda.manual_seed", "torch.cuda.manual_seed_all", "torch.random.manual_seed",
     "torch.mps.manual_seed", "torch.xpu.manual_seed", "torch.xpu.manual_seed_all"}
)
_NOT_MODEL_RECEIVERS = re.compile(r"trainer|runner|learner|agent|engine|pipeline|solver|experiment|^exp$|env", re.I)
_MODEL_NAME = re.compile(
    r"^(model|net|network|module|encoder|decoder|classifier|backbone|generator|discriminator|policy|critic|actor"
    r"|student|teacher|unet|resnet|vae|cnn|mlp|lstm|rnn|gnn|transformer)$|^(net|model)_?[a-z0-9]{0,6}$"
    r"|^[a-z]+_(model|net)$", re.I)
_VERB = re.compile(r"(get|build|create|make|load|init|setup|define|prepare|save|train|eval|evaluate|test|validate"
                   r"|wrap|compile|export|run|update|copy|freeze|print|log)_", re.I)
_OPTIMIZER_NAME = re.compile(r"(optim|optimizer|optimiser)|^opt$|^opt_?[a-z0-9]{0,3}$|_opt$", re.I)
_SCHEDULER_NAME = re.compile(r"sched|lr_scheduler|scheduler|^lrs$|^lr_sched", re.I)
_SCALER_NAME = re.compile(r"scaler", re.I)
_ZERO_HELPER = re.compile(r"zero_grad|zero_?grads|clear_?grad|reset_?grad", re.I)


def last_part(name: str | None) -> str:
    return name.rsplit(".", 1)[-1] if name else ""


@dataclass(eq=False)
class Effect:
    kind: str
    site: cst.CSTNode  # the node in the scope's own module: the call itself, or the helper call it came through
    inner: cst.CSTNode  # where it really happens (maybe in a helper, maybe in another module)
    target: str | None = None  # dotted name acted on, in the scope's names where it could be mapped
    ctx: tuple[cst.CSTNode, ...] = ()  # enclosing context nodes from the scope down (incl. helper call sites)
    nograd: bool | None = False  # True under no_grad / inference_mode; None when it depends on a flag
    via: tuple[cst.Call, ...] = ()  # helper call chain, outermost first; () when direct
    flag: bool | None = True  # for TRAIN: train(True/False) or None for a variable flag
    arg: cst.BaseExpression | None = None  # the loss of a backward, the closure of a step, ...
    detail: str = ""  # for SEED: "torch" | "random" | "numpy" | "all"

    @property
    def direct(self) -> bool:
        return not self.via

    def inside(self, node: cst.CSTNode) -> bool:
        return any(c is node for c in self.ctx)

    def ctx_after(self, node: cst.CSTNode) -> tuple[cst.CSTNode, ...]:
        for i, c in enumerate(self.ctx):
            if c is node:
                return self.ctx[i + 1:]
        return self.ctx


@dataclass
class Scope:
    node: cst.CSTNode  # cst.Module or cst.FunctionDef
    effects: list[Effect] = field(default_factory=list)
    _index: dict[int, list[Effect]] | None = None

    def within(self, node: cst.CSTNode) -> list[Effect]:
        """The effects inside the compound statement ``node`` (indexed once per scope)."""
        if self._index is None:
            index: dict[int, list[Effect]] = {}
            for e in self.effects:
                seen: set[int] = set()
                for c in e.ctx:
                    key = id(c)
                    if key not in seen:
                        seen.add(key)
                        index.setdefault(key, []).append(e)
            self._index = index
        return self._index.get(id(node), [])


class _CallNames:
    """What each call of a module calls: ``dotted_name(call.func)`` and ``model.call_name(call)`` (which
    depends on the dotted name only), by id of the call, and the calls with their qualified names in order."""

    def __init__(self, model: ProgramModel) -> None:
        self.dotted: dict[int, str | None] = {}
        self.qualified: dict[int, str | None] = {}
        self.named: list[tuple[cst.Call, str | None]] = []
        resolved: dict[str | None, str | None] = {}
        for call in model.calls:
            name = dotted_name(call.func)
            if name not in resolved:
                resolved[name] = model.call_name(call)
            qual = resolved[name]
            self.dotted[id(call)] = name
            self.qualified[id(call)] = qual
            self.named.append((call, qual))


def _call_names(model: ProgramModel) -> _CallNames:
    names = model.__dict__.get("_torchsanity_call_names")
    if names is None:
        names = model.__dict__["_torchsanity_call_names"] = _CallNames(model)
    return names


def named_calls(model: ProgramModel) -> list[tuple[cst.Call, str | None]]:
    """Every call of the module with its ``model.call_name``, in ``model.calls`` order (computed once)."""
    return _call_names(model).named


def call_name(model: ProgramModel, call: cst.Call) -> str | None:
    """``model.call_name(call)``, looked up for the module's own calls."""
    names = _call_names(model).qualified
    key = id(call)
    return names[key] if key in names else model.call_name(call)


def callee_name(model: ProgramModel, call: cst.Call) -> str | None:
    """``dotted_name(call.func)``, looked up for the module's own calls."""
    names = _call_names(model).dotted
    key = id(call)
    return names[key] if key in names else dotted_name(call.func)


def enclosing_function(model: ProgramModel, node: cst.CSTNode) -> cst.FunctionDef | None:
    """``model.enclosing_function(node)``, memoized for the node and the ancestors on the way up."""
    found = model.__dict__.setdefault("_torchsanity_enclosing_functions", {})
    parents = model.parents
    path = []
    key = id(node)
    while key not in found:
        path.append(key)
        parent = parents.get(key)
        if parent is None or type(parent) is cst.FunctionDef:
            found[key] = parent
            break
        key = id(parent)
    function = found[key]
    for key in path:
        found[key] = function
    return function


def flow_of(model: ProgramModel) -> "Flow":
    """The (cached) flow of a model."""
    flow = model.__dict__.get("_torchsanity_flow")
    if flow is None:
        flow = Flow(model)
        model.__dict__["_torchsanity_flow"] = flow
    return flow


# Where a node sits, as far as effects care: (the scope whose own code holds it, its context nodes from the
# scope down, its no_grad state, the innermost call around it); None for code of no scope.
_Context = tuple[cst.CSTNode, tuple[cst.CSTNode, ...], "bool | None", "cst.Call | None"]
# An effect site (a call, or a statement clearing `.grad`) with its context nodes and no_grad state.
_Site = tuple[cst.CSTNode, tuple[cst.CSTNode, ...], "bool | None"]


class Flow:
    def __init__(self, model: ProgramModel) -> None:
        self.model = model
        self._scopes: dict[int, Scope] = {}
        self._function_effects: dict[int, list[Effect]] = {}
        self._in_progress: set[int] = set()
        self._bare_functions: dict[str, FunctionInfo] = {}
        for qual, info in model.functions.items():
            if "." not in qual:
                self._bare_functions.setdefault(qual, info)
        self._optimizer_arg_names: set[str] | None = None
        self._sites_by_scope: dict[int, list[_Site]] | None = None
        self._callees: dict[tuple[str, str | None], tuple[str, object] | None] = {}
        self._siblings: dict[str, ProgramModel | None] = {}

    # ---- scopes ----------------------------------------------------------------------------------

    def scope_node(self, node: cst.CSTNode) -> cst.CSTNode:
        return enclosing_function(self.model, node) or self.model.module

    def scope(self, node: cst.CSTNode) -> Scope:
        """The effects of the scope ``node`` (a Module or FunctionDef) itself."""
        key = id(node)
        scope = self._scopes.get(key)
        if scope is None:
            effects = self._function(node) if type(node) is cst.FunctionDef else self._walk(node, None)
            scope = Scope(node, effects)
            self._scopes[key] = scope
        return scope

    def scope_of(self, node: cst.CSTNode) -> Scope:
        return self.scope(self.scope_node(node))

    def loop_effects(self, loop: cst.CSTNode) -> list[Effect]:
        """Effects inside ``loop`` (or any compound statement), helpers inlined."""
        return self.scope_of(loop).within(loop)

    def all_scopes(self) -> Iterator[Scope]:
        yield self.scope(self.model.module)
        for info in self.model.functions.values():
            yield self.scope(info.node)

    # ---- walking ---------------------------------------------------------------------------------

    def _function(self, func: cst.FunctionDef) -> list[Effect]:
        """Effects of a function body relative to itself (cached; recursion-guarded)."""
        key = id(func)
        cached = self._function_effects.get(key)
        if cached is not None:
            return cached
        if key in self._in_progress:
            return []
        self._in_progress.add(key)
        try:
            info = self._info(func)
            out = self._walk(func, info.class_name if info is not None else None)
        finally:
            self._in_progress.discard(key)
        self._function_effects[key] = out
        return out

    def _walk(self, scope: cst.CSTNode, self_class: str | None) -> list[Effect]:
        """The effects of the scope's own code in execution order; ``self_class``: the class of ``self``."""
        out: list[Effect] = []
        try:
            for site, ctx, nograd in self._sites(scope):
                if type(site) is cst.Call:
                    self._call(site, ctx, nograd, out, self_class)
                else:
                    out.append(Effect(ZERO_GRAD, site, site, None, ctx, nograd))
        except RecursionError:
            pass
        return out

    def _sites(self, scope: cst.CSTNode) -> list[_Site]:
        """The effect sites of the scope's own code (not of the functions, classes or lambdas in it), in
        execution order: a call comes after the calls in its arguments (found once for all scopes)."""
        if self._sites_by_scope is None:
            calls = [call for call in self.model.calls if self._may_have_effects(call)]
            self._sites_by_scope = _sites_by_scope(self.model, calls)
        return self._sites_by_scope.get(id(scope), [])

    def _may_have_effects(self, call: cst.Call) -> bool:
        """False for the calls that :meth:`_call` surely finds no effect in, whatever their scope."""
        func = call.func
        if type(func) is cst.Attribute and func.attr.value in _EFFECT_METHODS:
            return True
        func_name = callee_name(self.model, call)
        if func_name is None:
            return False
        return _calls_self_method(func_name) or self._callee(call, func_name, None) is not None

    def _info(self, func: cst.FunctionDef) -> FunctionInfo | None:
        cache = self.__dict__.setdefault("_info_cache", {})
        if not cache:
            for info in self.model.functions.values():
                cache[id(info.node)] = info
        return cache.get(id(func))

    def _call(self, call: cst.Call, ctx: tuple[cst.CSTNode, ...], nograd: bool | None, out: list[Effect],
              self_class: str | None) -> None:
        func = call.func
        if type(func) is cst.Attribute and func.attr.value in _EFFECT_METHODS \
                and self._method_call(call, ctx, nograd, out):
            return
        func_name = callee_name(self.model, call)
        if func_name is None:
            return
        callee = self._callee(call, func_name, self_class)
        if callee is None:
            return
        kind, detail = callee
        if kind == _HELPER:
            self._inline_helper(call, ctx, nograd, out, detail)
        else:
            target = func_name if kind == FORWARD else None
            out.append(Effect(kind, call, call, target, ctx, nograd, detail=detail or ""))

    def _method_call(self, call: cst.Call, ctx: tuple[cst.CSTNode, ...], nograd: bool | None,
                     out: list[Effect]) -> bool:
        """Append the effect of ``x.backward()`` / ``opt.step()`` / ``model.eval()`` / ...; False when the
        call is none of those after all (``env.step()``)."""
        model = self.model
        func = call.func
        qual = call_name(model, call)
        args = [a for a in call.args if a.keyword is None and not a.star]
        attr = func.attr.value
        recv = func.value
        recv_name = dotted_name(recv)
        if attr == "backward":
            if qual in ("torch.autograd.backward",) or (
                recv_name and re.search(r"accelerator|fabric|engine|^self$", last_part(recv_name), re.I) and args
            ):
                loss = args[0].value if args else None
            elif isinstance(recv, cst.Call) and isinstance(recv.func, cst.Attribute) and recv.func.attr.value == "scale" and recv.args:
                loss = recv.args[0].value
            else:
                loss = recv
            out.append(Effect(BACKWARD, call, call, recv_name, ctx, nograd, arg=loss))
            return True
        if attr == "manual_backward":
            out.append(Effect(BACKWARD, call, call, recv_name, ctx, nograd, arg=args[0].value if args else None))
            return True
        if attr == "step":
            kind = self._step_kind(model, recv_name)
            if kind == SCHEDULER:
                out.append(Effect(SCHED_STEP, call, call, recv_name, ctx, nograd, arg=args[0].value if args else None))
                return True
            if kind == OPTIMIZER:
                closure = args[0].value if args else None
                if closure is not None:
                    self._inline_closure(closure, call, ctx, nograd, out)
                out.append(Effect(OPT_STEP, call, call, recv_name, ctx, nograd, arg=closure))
                return True
            if kind == "scaler" and args:
                out.append(Effect(OPT_STEP, call, call, dotted_name(args[0].value), ctx, nograd))
                return True
        if attr == "zero_grad":
            out.append(Effect(ZERO_GRAD, call, call, recv_name, ctx, nograd))
            return True
        if attr in ("zero_", "fill_", "detach_") and "grad" in (dotted_name(recv) or _chain_text(recv)).split("."):
            out.append(Effect(ZERO_GRAD, call, call, None, ctx, nograd))
            return True
        if attr in ("eval", "train") and not (recv_name and _NOT_MODEL_RECEIVERS.search(last_part(recv_name))) \
                and qual not in ("torch.nn.Module.train",) and not (type(recv) is cst.Name and recv.value in model.imports):
            if not call.args and _mode_by_flag(model, call, recv_name):
                out.append(Effect(TRAIN, call, call, recv_name, ctx, nograd, flag=None))
                return True
            if attr == "eval" and not call.args:
                out.append(Effect(EVAL, call, call, recv_name, ctx, nograd, flag=False))
                return True
            if attr == "train" and len(call.args) <= 1:
                flag: bool | None = True
                if call.args:
                    value = call.args[0].value
                    flag = {"True": True, "False": False}.get(value.value) if isinstance(value, cst.Name) else None
                out.append(Effect(TRAIN, call, call, recv_name, ctx, nograd, flag=flag))
                return True
        if attr == "fit" and recv_name and self._is_lightning_trainer(model, recv_name):
            out.append(Effect(FIT, call, call, recv_name, ctx, nograd))
            return True
        return False

    def _callee(self, call: cst.Call, func_name: str, self_class: str | None):
        """What calling ``func_name`` does, as (SEED, what it seeds), (_HELPER, ``_resolve``'s answer),
        (ZERO_GRAD, None), (FORWARD, None) or None. It depends on the name (and, for ``self.method``, on
        ``self_class``) only: memoized."""
        key = (func_name, self_class if _calls_self_method(func_name) else None)
        if key in self._callees:
            return self._callees[key]
        model = self.model
        seed = self._seed_kind(model, call, call_name(model, call))
        resolved = self._resolve(model, call, self_class) if seed is None else None
        if seed is not None:
            callee = (SEED, seed)
        elif resolved is not None:
            callee = (_HELPER, resolved)
        elif _ZERO_HELPER.search(last_part(func_name)):
            callee = (ZERO_GRAD, None)  # an unresolved helper whose name says it clears gradients
        elif self._is_forward(model, call):
            callee = (FORWARD, None)
        else:
            callee = None
        self._callees[key] = callee
        return callee

    def _inline_helper(self, call: cst.Call, ctx: tuple[cst.CSTNode, ...], nograd: bool | None, out: list[Effect],
                       resolved) -> None:
        """Append the effects of the helper ``call`` calls, its parameters mapped to the call's arguments."""
        target_model, info, bound_self = resolved
        effects = self._function_in(target_model, info.node)
        mapping = _param_mapping(info.node, call, bound_self)
        for e in effects:
            out.append(Effect(
                e.kind,
                call,
                e.inner,
                _map_target(e.target, mapping),
                ctx + (call,) + e.ctx,
                True if (nograd is True or e.nograd is True) else (None if (nograd is None or e.nograd is None) else False),
                (call,) + e.via,
                e.flag,
                e.arg if target_model is self.model else None,
                e.detail,
            ))

    def _function_in(self, model: ProgramModel, func: cst.FunctionDef) -> list[Effect]:
        if model is self.model:
            return self._function(func)
        other = flow_of(model)
        if id(func) in self._in_progress or id(func) in other._in_progress:
            return []
        self._in_progress.add(id(func))
        try:
            return other._function(func)
        finally:
            self._in_progress.discard(id(func))

    def _inline_closure(self, closure: cst.BaseExpression, call: cst.Call, ctx: tuple[cst.CSTNode, ...],
                        nograd: bool | None, out: list[Effect]) -> None:
        name = dotted_name(closure)
        if name is None or "." in name:
            return
        info = self._bare_functions.get(name)
        if info is None:
            return
        for e in self._function(info.node):
            out.append(Effect(e.kind, call, e.inner, e.target, ctx + (call,) + e.ctx,
                              True if (nograd is True or e.nograd is True) else e.nograd, (call,) + e.via, e.flag,
                              e.arg, e.detail))

    # ---- classification -------------------------------------------------------------------------

    def _step_kind(self, model: ProgramModel, recv_name: str | None) -> str | None:
        if not recv_name:
            return None
        kind = kind_of_name(model, recv_name)
        if kind in (SCHEDULER, OPTIMIZER):
            return kind
        last = last_part(recv_name)
        if _SCHEDULER_NAME.search(last):
            return SCHEDULER
        if _SCALER_NAME.search(last) or _bound_to(model, recv_name, ("GradScaler",)):
            return "scaler"
        if _OPTIMIZER_NAME.search(last) and not re.search(r"option", last, re.I):
            return OPTIMIZER
        return None

    def is_scheduler(self, name: str | None) -> bool:
        return self._step_kind(self.model, name) == SCHEDULER

    def _is_lightning_trainer(self, model: ProgramModel, name: str) -> bool:
        for b in model.bindings.get(name, []):
            if isinstance(b.value, cst.Call):
                q = model.call_name(b.value) or ""
                if q.endswith("Trainer") and q.startswith(("pytorch_lightning", "lightning")):
                    return True
        return False

    def _seed_kind(self, model: ProgramModel, call: cst.Call, qual: str | None) -> str | None:
        if not qual:
            return None
        if qual in _TORCH_SEEDS:
            return "torch"
        if qual == "random.seed":
            return "random"
        if qual == "numpy.random.seed":
            return "numpy"
        last = last_part(qual)
        if last == "manual_seed":
            return "torch"
        if "seed" not in last.lower() or last in ("default_rng", "SeedSequence"):
            return None
        if qual.startswith(("random.", "numpy.")):
            return None
        # A local helper is inlined instead (its body says what it seeds).
        if self._resolve(model, call, None) is not None:
            return None
        return "all"

    def _is_forward(self, model: ProgramModel, call: cst.Call) -> bool:
        name = dotted_name(call.func)
        if name is None or name in model.imports or name in ("self", "super"):
            return False
        if name in self._bare_functions or name in model.classes:
            return False
        if name.endswith(".generate") and is_model_name(model, name[: -len(".generate")]):
            return True  # `model.generate(...)` (Hugging Face): inference through the model's forward
        return is_model_name(model, name)

    def _resolve(self, model: ProgramModel, call: cst.Call, self_class: str | None):
        """(model, FunctionInfo, bound_self) of the function ``call`` calls, when it is ours."""
        func = call.func
        if isinstance(func, cst.Name):
            name = func.value
            if model is self.model:
                info = self._bare_functions.get(name)
            else:
                info = model.functions.get(name)
            if info is not None:
                return model, info, False
            if name in model.imports and model.project is not None:
                module, _, fname = model.imports[name].rpartition(".")
                other = self._sibling_module(module) if module else None
                info = other.functions.get(fname) if other is not None else None
                if info is not None and info.class_name is None:
                    return other, info, False
            return None
        if isinstance(func, cst.Attribute):
            recv = dotted_name(func.value)
            if recv == "self" and self_class is not None:
                for cls in _class_chain(model, self_class):
                    info = model.functions.get(f"{cls}.{func.attr.value}")
                    if info is not None:
                        return model, info, True
                return None
            if recv and "." not in recv and model.project is not None and recv in model.imports:
                other = self._sibling_module(model.imports[recv])
                if other is not None:
                    info = other.functions.get(func.attr.value)
                    if info is not None:
                        return other, info, False
        return None

    def _sibling_module(self, module: str) -> ProgramModel | None:
        """The model of ``module`` as imported here, when the project has its file (memoized per module:
        each lookup asks the file system)."""
        if module not in self._siblings:
            project = self.model.project
            try:
                path = project.module_file(module, self.model.path)
                self._siblings[module] = project.model_for(path) if path is not None else None
            except Exception:  # a broken sibling never breaks this file
                self._siblings[module] = None
        return self._siblings[module]

    # ---- queries used by several rules ----------------------------------------------------------

    def optimizer_arg_names(self) -> set[str]:
        """Dotted names mentioned in the arguments of optimizer constructors in this module."""
        if self._optimizer_arg_names is None:
            names: set[str] = set()
            for bs in self.model.bindings.values():
                for b in bs:
                    if b.kind == OPTIMIZER and isinstance(b.value, cst.Call):
                        for arg in b.value.args:
                            names.update(dotted_names_in(arg.value))
            self._optimizer_arg_names = names
        return self._optimizer_arg_names


# ---- effect sites ----------------------------------------------------------------------------------

_NESTED_SCOPE_TYPES = frozenset({cst.FunctionDef, cst.ClassDef, cst.Lambda})  # code with effects of its own
# Fields of statements and blocks that hold statements.
_BLOCK_FIELDS = ("body", "handlers", "orelse", "finalbody", "cases")


def _sites_by_scope(model: ProgramModel, calls: list[cst.Call]) -> dict[int, list[_Site]]:
    """The effect sites of every scope (by id of its Module / FunctionDef), in execution order: ``calls``
    (those of ``model.calls`` that may be effects) and the statements that clear `.grad`."""
    inner, clearings = _statement_contexts(model)
    kept = {id(call) for call in calls}
    contexts: dict[int, _Context] = {}
    by_scope: dict[int, list[cst.CSTNode]] = {}
    for call in calls:
        context = _call_context(model, call, inner, kept)
        if context is not None:
            contexts[id(call)] = context
            by_scope.setdefault(id(context[0]), []).append(call)
    sites = {key: _execution_order(nodes, contexts) for key, nodes in by_scope.items()}
    # Scopes with statements that clear `.grad` are walked in full, to place those among the calls.
    clearing_scopes: dict[int, cst.CSTNode] = {}
    for statement, context in clearings:
        contexts[id(statement)] = context
        clearing_scopes[id(context[0])] = context[0]
    for key, scope in clearing_scopes.items():
        nodes = _walk_sites(scope.body if type(scope) is cst.FunctionDef else scope)
        sites[key] = [(node, *contexts[id(node)][1:3]) for node in nodes if id(node) in contexts]
    return sites


def _statement_contexts(model: ProgramModel) -> tuple[dict[int, _Context | None],
                                                      list[tuple[cst.CSTNode, _Context]]]:
    """The context of the code directly in each statement line, compound statement, handler or case (by
    id), and the statements that clear gradients (``p.grad = None``, ``del p.grad``) with their context."""
    inner: dict[int, _Context | None] = {}
    clearings: list[tuple[cst.CSTNode, _Context]] = []
    stack: list[tuple[cst.CSTNode, _Context | None]] = [(model.module, None)]
    while stack:
        node, context = stack.pop()
        kind = type(node)
        if kind is cst.SimpleStatementLine or kind is cst.SimpleStatementSuite:
            inner[id(node)] = context
            if context is not None:
                for statement in node.body:
                    if type(statement) in _CLEARING_TYPES and _cleared_grads(statement):
                        clearings.append((statement, context))
            continue
        if kind is cst.Module:
            context = (node, (), False, None)
        elif kind is cst.FunctionDef:
            inner[id(node)] = None  # decorators, parameters: no scope's own code
            stack.append((node.body, (node, (), _decorated_no_grad(model, node), None)))
            continue
        elif kind is cst.ClassDef:
            context = None  # a class body is no scope's own code
        elif kind in _CTX_SET and context is not None:
            scope, ctx, nograd, _ = context
            context = (scope, ctx + (node,), _with_no_grad(model, node, nograd) if kind is cst.With else nograd, None)
        inner[id(node)] = context
        for name in _block_fields(kind):
            value = getattr(node, name)
            if type(value) is tuple or type(value) is list:
                stack.extend([(child, context) for child in value])
            elif value is not None:
                stack.append((value, context))
    return inner, clearings


def _call_context(model: ProgramModel, call: cst.Call, inner: dict[int, _Context | None],
                  kept: set[int]) -> _Context | None:
    """The context of the statement (handler, case) a call is in, with the innermost ``kept`` call around
    it; None in a lambda, a decorator, a class body, ..."""
    parents = model.parents
    around = None
    node = call
    while True:
        parent = parents.get(id(node))
        if parent is None:
            return None
        if id(parent) in inner:
            break
        kind = type(parent)
        if kind is cst.Lambda:
            return None
        if kind is cst.Call and around is None and id(parent) in kept:
            around = parent
        node = parent
    context = inner[id(parent)]
    if context is None:
        return None
    return context[0], context[1], context[2], around


def _execution_order(calls: list[cst.CSTNode], contexts: dict[int, _Context]) -> list[_Site]:
    """A scope's calls in walk order (``model.calls``) → execution order: each after the calls inside it."""
    sites: list[_Site] = []
    pending: list[tuple[cst.CSTNode, _Context]] = []  # calls whose arguments are still being evaluated
    for call in calls:
        context = contexts[id(call)]
        while pending and pending[-1][0] is not context[3]:
            done, done_context = pending.pop()
            sites.append((done, done_context[1], done_context[2]))
        pending.append((call, context))
    while pending:
        done, done_context = pending.pop()
        sites.append((done, done_context[1], done_context[2]))
    return sites


def _walk_sites(root: cst.CSTNode) -> list[cst.CSTNode]:
    """The calls and `.grad`-clearing statements (once per cleared target) of a scope's own code under
    ``root``, in execution order (children first, in walk order)."""
    sites: list[cst.CSTNode] = []
    stack: list[tuple[cst.CSTNode, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        kind = type(node)
        if children_done:
            if kind is cst.Call:
                sites.append(node)
            elif kind in _CLEARING_TYPES:
                sites.extend([node] * _cleared_grads(node))
        elif kind not in _NESTED_SCOPE_TYPES:
            stack.append((node, True))
            stack.extend((child, False) for child in reversed(list(iter_children(node))))
    return sites


def _calls_self_method(func_name: str) -> bool:
    """``self.method``: which function it calls depends on the class of ``self``."""
    head, _, rest = func_name.partition(".")
    return head == "self" and rest != "" and "." not in rest


def _cleared_grads(statement: cst.CSTNode) -> int:
    """How many ``x.grad`` an assignment or ``del`` statement clears."""
    targets = [t.target for t in statement.targets] if type(statement) is cst.Assign else (statement.target,)
    count = 0
    for target in targets:
        if type(target) is cst.Attribute and target.attr.value == "grad":
            count += 1
    return count


@lru_cache(maxsize=None)
def _block_fields(node_type: type) -> tuple[str, ...]:
    """The fields of a statement or block that hold statements, blocks, handlers or cases."""
    names = {f.name for f in dataclasses.fields(node_type)}
    return tuple(name for name in _BLOCK_FIELDS if name in names)


# ---- helpers ---------------------------------------------------------------------------------------


def dotted_names_in(node: cst.CSTNode) -> Iterator[str]:
    """Every maximal Name / Attribute chain in ``node``."""
    stack = [node]
    while stack:
        current = stack.pop()
        name = dotted_name(current) if type(current) in _NAME_OR_ATTRIBUTE else None
        if name is not None:
            yield name
            continue
        stack.extend(iter_children(current))


def names_in(node: cst.CSTNode) -> set[str]:
    out: set[str] = set()
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) is cst.Name:
            out.add(current.value)
        stack.extend(iter_children(current))
    return out


def _mode_by_flag(model, call: cst.Call, recv_name: str | None) -> bool:
    """``m.train() if training else m.eval()``: one branch of a conditional expression whose other branch sets
    the other mode of the same module, i.e. ``m.train(training)``."""
    parent = model.parent(call)
    if recv_name is None or not isinstance(parent, cst.IfExp):
        return False
    other = parent.orelse if parent.body is call else parent.body
    wanted = "eval" if call.func.attr.value == "train" else "train"
    return (isinstance(other, cst.Call) and not other.args and isinstance(other.func, cst.Attribute)
            and other.func.attr.value == wanted and dotted_name(other.func.value) == recv_name)


def _chain_text(expr: cst.CSTNode) -> str:
    parts = []
    while isinstance(expr, (cst.Attribute, cst.Call, cst.Subscript)):
        if isinstance(expr, cst.Attribute):
            parts.append(expr.attr.value)
            expr = expr.value
        elif isinstance(expr, cst.Call):
            expr = expr.func
        else:
            expr = expr.value
    return ".".join(reversed(parts))


def _safe_dotted(name: str) -> bool:
    return all(part.isidentifier() for part in name.split("."))


def _bound_to(model: ProgramModel, name: str, suffixes: tuple[str, ...]) -> bool:
    for b in model.bindings.get(name, []):
        if isinstance(b.value, cst.Call) and last_part(model.call_name(b.value) or "") in suffixes:
            return True
    return False


def _class_chain(model: ProgramModel, class_name: str) -> list[str]:
    chain, seen = [class_name], {class_name}
    i = 0
    while i < len(chain) and len(chain) < 10:
        node = model.classes.get(chain[i])
        i += 1
        if node is None:
            continue
        for base in node.bases:
            name = dotted_name(base.value)
            if name and name in model.classes and name not in seen:
                seen.add(name)
                chain.append(name)
    return chain


def _param_mapping(func: cst.FunctionDef, call: cst.Call, bound_self: bool) -> dict[str, str | None]:
    params = [p.name.value for p in func.params.posonly_params] + [p.name.value for p in func.params.params]
    if bound_self and params:
        params = params[1:]
    mapping: dict[str, str | None] = {}
    positional = [a for a in call.args if a.keyword is None and not a.star]
    for name, arg in zip(params, positional):
        mapping[name] = dotted_name(arg.value)
    for arg in call.args:
        if arg.keyword is not None:
            mapping[arg.keyword.value] = dotted_name(arg.value)
    for p in list(func.params.params) + list(func.params.kwonly_params) + list(func.params.posonly_params):
        mapping.setdefault(p.name.value, None)
    if bound_self:
        mapping.pop("self", None)
    return mapping


def _map_target(target: str | None, mapping: dict[str, str | None]) -> str | None:
    if target is None:
        return None
    head, dot, rest = target.partition(".")
    if head in mapping:
        mapped = mapping[head]
        if mapped is None:
            return None
        return mapped + dot + rest
    return target


def _with_no_grad(model: ProgramModel, node: cst.With, inherited: bool | None) -> bool | None:
    result = inherited
    for item in node.items:
        expr = item.item
        if isinstance(expr, cst.Call):
            qual = model.call_name(expr)
            if qual in _NO_GRAD_CONTEXTS:
                if qual.endswith("inference_mode") and expr.args and not _is_true(expr.args[0].value):
                    result = None if result is not True else True
                    continue
                return True
            if qual in _SET_GRAD:
                value = expr.args[0].value if expr.args else None
                if isinstance(value, cst.Name) and value.value == "False":
                    return True
                if isinstance(value, cst.Name) and value.value == "True":
                    result = False
                else:
                    result = None
            elif qual in _ENABLE_GRAD:
                result = False
        elif model.qualname(expr) in _NO_GRAD_CONTEXTS:
            return True
    return result


def _is_true(expr: cst.BaseExpression) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "True"


def _decorated_no_grad(model: ProgramModel, func: cst.FunctionDef) -> bool:
    for dec in func.decorators:
        expr = dec.decorator.func if isinstance(dec.decorator, cst.Call) else dec.decorator
        if model.qualname(expr) in _NO_GRAD_CONTEXTS:
            return True
    return False


def decorated_no_grad(model: ProgramModel, func: cst.FunctionDef) -> bool:
    return _decorated_no_grad(model, func)


def is_conditional(e: Effect, relative_to: cst.CSTNode, steady: bool = False) -> bool:
    """Whether ``e`` sits under an if / try / nested loop below ``relative_to``; an ``if`` that only checks
    that the object exists (``if scheduler:`` / ``if scheduler is not None:`` around ``scheduler.step()``) is
    a guard, not a condition. With ``steady``, neither is an if / else on a test that no statement of the loop
    ``relative_to`` can change (``if args.lr_scheduler == "multistep":``): it takes the same branch every time."""
    ctx = e.ctx_after(relative_to)
    for i, c in enumerate(ctx):
        if not isinstance(c, CONDITIONAL_TYPES) or _existence_guard(ctx, i, e.target):
            continue
        in_loop_body = not any(type(n) is cst.Call for n in ctx[:i])  # past a call: the code of a helper
        if steady and in_loop_body and (type(c) is cst.If and _loop_invariant(c.test, relative_to)
                                        or type(c) is cst.Else and i > 0 and type(ctx[i - 1]) is cst.If):
            continue  # an else is as steady as the if before it, whose test was checked one step earlier
        return True
    return False


def _loop_invariant(test: cst.BaseExpression, loop: cst.CSTNode) -> bool:
    """The test reads only names (and their attributes) that nothing in ``loop`` rebinds, and calls nothing."""
    if any(isinstance(n, (cst.Call, cst.Subscript, cst.Await, cst.NamedExpr)) for n in walk(test)):
        return False
    roots = {name.split(".")[0] for name in dotted_names_in(test)}
    if not roots or "self" in roots:
        return False
    bound = set()
    for node in walk(loop):
        if isinstance(node, (cst.AssignTarget, cst.AugAssign, cst.AnnAssign, cst.For, cst.AsName, cst.NamedExpr)):
            target = node.target if not isinstance(node, cst.AsName) else node.name
            bound.update(name.split(".")[0] for name in dotted_names_in(target))
    return not roots & bound


def _existence_guard(ctx: tuple[cst.CSTNode, ...], index: int, target: str | None) -> bool:
    node = ctx[index]
    if target is None or type(node) is not cst.If:
        return False
    if index + 1 < len(ctx) and type(ctx[index + 1]) is cst.Else:
        return False  # the else branch: runs when the object is missing
    if index > 0 and type(ctx[index - 1]) is cst.If and ctx[index - 1].orelse is node:
        return False  # an elif: only reached when the previous test failed
    test = node.test
    if isinstance(test, cst.Comparison) and len(test.comparisons) == 1 \
            and isinstance(test.comparisons[0].operator, cst.IsNot) \
            and isinstance(test.comparisons[0].comparator, cst.Name) and test.comparisons[0].comparator.value == "None":
        test = test.left
    return dotted_name(test) == target


def kind_of_name(model: ProgramModel, name: str | None) -> str | None:
    """``model.kind_of`` for a dotted name (without building an expression)."""
    if not name:
        return None
    for binding in reversed(model.bindings.get(name, [])):
        if binding.kind is not None:
            return binding.kind
        if binding.value is not None:
            kind = model.kind_of(binding.value)
            if kind is not None:
                return kind
    return None


def is_model_name(model: ProgramModel, name: str | None) -> bool:
    if not name:
        return False
    if kind_of_name(model, name) == MODEL:
        return True
    last = last_part(name)
    return bool(_MODEL_NAME.search(last)) and not _VERB.match(last) and not last[:1].isupper()


def same_object(a: str | None, b: str | None) -> bool:
    """``model`` / ``model.module`` / ``self.model`` refer to the same network."""
    if not a or not b or a == "self" or b == "self":
        return a == b and a is not None
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


def iter_loader_names(model: ProgramModel, expr: cst.BaseExpression) -> Iterator[str]:
    """Dotted names a `for` loop iterates over, through enumerate / tqdm / zip / iter wrappers."""
    stack = [expr]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Call):
            stack.extend(a.value for a in current.args)
            continue
        name = dotted_name(current)
        if name is not None:
            yield name
        elif isinstance(current, cst.Subscript):
            base = dotted_name(current.value)
            key = current.slice[0].slice if current.slice else None
            if base and isinstance(key, cst.Index) and isinstance(key.value, cst.SimpleString):
                yield f"{base}.{key.value.evaluated_value}"


_LOADER = re.compile(r"loader|(^|_)dl($|_)|dataloader|batches|(^|_)ds($|_)|dataset|data_iter|iterator", re.I)


def is_batch_loop(model: ProgramModel, loop: cst.CSTNode) -> bool:
    if not isinstance(loop, cst.For):
        return False
    for name in iter_loader_names(model, loop.iter):
        if kind_of_name(model, name) == DATALOADER:
            return True
        if _LOADER.search(last_part(name)):
            return True
    return False


def int_value(model: ProgramModel, expr: cst.BaseExpression | None, _depth: int = 0) -> int | None:
    """The integer an expression evidently holds: a literal, a name bound once to a literal, or an
    ``args.x`` whose argparse ``--x`` has an integer default."""
    if expr is None or _depth > 4:
        return None
    if isinstance(expr, cst.Integer):
        try:
            return int(expr.value.replace("_", ""), 0)
        except ValueError:
            return None
    name = dotted_name(expr)
    if name is None:
        return None
    if "." not in name:
        values = {int_value(model, b.value, _depth + 1) for b in model.bindings.get(name, [])}
        if len(values) == 1:
            return values.pop()
        return None
    # args.epochs: look for parser.add_argument("--epochs", default=N)
    attr = last_part(name)
    found: set[int | None] = set()
    for call in model.calls:
        if isinstance(call.func, cst.Attribute) and call.func.attr.value == "add_argument" and call.args:
            flags = [a.value.evaluated_value for a in call.args if a.keyword is None
                     and isinstance(a.value, cst.SimpleString)]
            dest = next((a.value for a in call.args if a.keyword and a.keyword.value == "dest"), None)
            names = {f.lstrip("-").replace("-", "_") for f in flags if isinstance(f, str)}
            if isinstance(dest, cst.SimpleString):
                names = {dest.evaluated_value}
            if attr in names:
                default = next((a.value for a in call.args if a.keyword and a.keyword.value == "default"), None)
                found.add(int_value(model, default, _depth + 1) if default is not None else None)
    if len(found) == 1:
        return found.pop()
    return None


def range_stop(model: ProgramModel, loop: cst.CSTNode) -> tuple[bool, int | None]:
    """(is a `for _ in range(...)` loop, its resolved stop) — the epoch count of an epoch loop."""
    if not isinstance(loop, cst.For) or not isinstance(loop.iter, cst.Call):
        return False, None
    call = loop.iter
    inner = call
    if model.call_name(call) in ("tqdm.tqdm", "tqdm", "tqdm.auto.tqdm", "tqdm.trange") and call.args and isinstance(call.args[0].value, cst.Call):
        inner = call.args[0].value
    if model.call_name(inner) != "range" or not inner.args or len(inner.args) > 2:
        return False, None
    if any(a.keyword is not None or a.star for a in inner.args):
        return True, None
    return True, int_value(model, inner.args[-1].value)


def indent_of(model: ProgramModel, stmt: cst.CSTNode) -> str:
    """The indentation (whitespace) of a statement, from its enclosing blocks."""
    parts = []
    for ancestor in model.ancestors(stmt):
        if isinstance(ancestor, cst.IndentedBlock):
            parts.append(ancestor.indent if ancestor.indent is not None else model.module.default_indent)
    return "".join(reversed(parts))


def statement_of_call(model: ProgramModel, call: cst.CSTNode) -> cst.SimpleStatementLine | None:
    """The statement line when ``call`` is the whole of a one-statement line (``opt.zero_grad()``)."""
    expr = model.parent(call)
    if not isinstance(expr, cst.Expr) or expr.value is not call:
        return None
    line = model.parent(expr)
    if isinstance(line, cst.SimpleStatementLine) and len(line.body) == 1:
        return line
    return None


def block_of(model: ProgramModel, stmt: cst.CSTNode) -> cst.CSTNode | None:
    """The block holding a statement (IndentedBlock or Module), or None for one-line bodies."""
    parent = model.parent(stmt)
    return parent if isinstance(parent, (cst.IndentedBlock, cst.Module)) else None


def top_statement_in(model: ProgramModel, node: cst.CSTNode, block: cst.CSTNode) -> cst.CSTNode | None:
    """The statement of ``block`` (its direct child) that holds ``node``."""
    current = node
    while current is not None:
        parent = model.parent(current)
        if parent is block:
            return current
        current = parent
    return None


def loop_body_block(loop: cst.CSTNode) -> cst.IndentedBlock | None:
    body = getattr(loop, "body", None)
    return body if isinstance(body, cst.IndentedBlock) and body.body else None


def loop_header(loop: cst.CSTNode) -> tuple[cst.CSTNode, cst.CSTNode]:
    """(start, end) nodes to report a loop on: its header, not its whole body."""
    if isinstance(loop, cst.For):
        return loop.target, loop.iter
    if isinstance(loop, cst.While):
        return loop.test, loop.test
    return loop, loop


def module_alias(model: ProgramModel, module: str) -> str | None:
    """The local name a module is imported as (``np`` for numpy), if any."""
    for local, qual in model.imports.items():
        if qual == module and local.isidentifier():
            return local
    return None


def first_import_block_end(model: ProgramModel) -> cst.CSTNode | None:
    """The last statement of the module's leading block of imports / docstring, or None."""
    last = None
    for stmt in model.module.body:
        if isinstance(stmt, cst.SimpleStatementLine) and all(
            isinstance(s, (cst.Import, cst.ImportFrom)) or (isinstance(s, cst.Expr) and isinstance(s.value, (cst.SimpleString, cst.ConcatenatedString)))
            for s in stmt.body
        ):
            last = stmt
            continue
        break
    return last


def modulo_in(test: cst.BaseExpression) -> cst.BinaryOperation | None:
    """The first ``a % k`` in an `if` test (``i % k == 0``, ``(i + 1) % k == 0 or last``, ``not i % k``)."""
    stack = [test]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.BinaryOperation) and isinstance(current.operator, cst.Modulo):
            return current
        if isinstance(current, (cst.Comparison, cst.BooleanOperation, cst.UnaryOperation, cst.ComparisonTarget)):
            stack.extend(reversed(list(iter_children(current))))
    return None


def accumulation_gates(model: ProgramModel, loop: cst.CSTNode, effects: list[Effect]) -> list[tuple[cst.If, cst.BinaryOperation]]:
    """`if ... % k ...:` statements inside ``loop`` whose body steps an optimizer on gradients accumulated
    outside it (a gate that also runs the backward alternates updates, as GANs do with ``n_critic``)."""
    gates = []
    seen: set[int] = set()
    for e in effects:
        if e.kind != OPT_STEP:
            continue
        after = e.ctx_after(loop)
        for i, c in enumerate(after):
            if isinstance(c, LOOP_TYPES):
                break
            if isinstance(c, cst.If) and id(c) not in seen:
                nxt = after[i + 1] if i + 1 < len(after) else None
                if nxt is not None and nxt is c.orelse:
                    continue
                mod = modulo_in(c.test)
                if mod is not None:
                    seen.add(id(c))
                    if not any(b.kind == BACKWARD and any(x is c for x in b.ctx) for b in effects):
                        gates.append((c, mod))  # backward inside the gate too: alternation (n_critic), not accumulation
                    break
    return gates


# ---- evaluation regions (SAN201 / SAN202) ------------------------------------------------------------

_EVAL_FUNCTION = re.compile(
    r"^(eval|evaluate|evaluation|validate|validation|val|valid|test|predict|inference|infer)"
    r"(_(epoch|one_epoch|model|loop|loader|fn|net|all|dataset|set))?$"
    r"|^(run|do)_(eval|evaluation|validation|val|test|inference)(_epoch)?$"
    r"|^(evaluate|validate|predict)_\w+$",
    re.I,
)
_EVAL_LOADER = re.compile(r"(^|_)(val|valid|validation|test|eval|dev|holdout)(_|$)", re.I)
_EVAL_LOADER_KIND = re.compile(r"load|(^|_)dl($|_)|data|set|ds($|_)|iter|batches", re.I)
_GRAD_NAME = re.compile(r"requires_grad|enable_grad|register_hook")


@dataclass
class EvalRegion:
    node: cst.CSTNode  # the FunctionDef or the loop
    function: FunctionInfo | None
    effects: list[Effect]
    model: ProgramModel
    within: EvalRegion | None = None  # for a loop: the candidate function around it

    def holds(self) -> bool:
        """Whether the candidate is evaluation code: nothing in it asks for gradients, and (a loop) the
        function around it is not evaluation code itself. Walks the region: ask after cheaper checks."""
        return not _needs_grad(self.model, self.node) and not (self.within is not None and self.within.holds())


def _is_test_module(model: ProgramModel) -> bool:
    base = model.path.replace("\\", "/").rsplit("/", 1)[-1]
    return base.startswith("test_") or base.endswith("_test.py") or any(
        q.split(".")[0] in ("pytest", "unittest") for q in model.imports.values())


def eval_candidates(model: ProgramModel) -> list[EvalRegion]:
    """Candidate evaluation code: functions named like evaluate / validate / test / predict, and loops over
    a validation / test loader, that run a model forward and never backpropagate (cached). A candidate is
    evaluation code when :meth:`EvalRegion.holds`."""
    cached = model.__dict__.get("_torchsanity_eval_candidates")
    if cached is not None:
        return cached
    flow = flow_of(model)
    regions: list[EvalRegion] = []
    eval_functions: dict[int, EvalRegion] = {}
    if not _is_test_module(model):
        for info in model.functions.values():
            if info.class_name is not None and info.class_name in model.module_classes:
                continue  # a module's own predict(), Lightning's validation_step: the caller / Lightning decides
            if not _EVAL_FUNCTION.match(info.node.name.value):
                continue
            effects = flow.scope(info.node).effects
            if not _evaluates(effects):
                continue
            region = EvalRegion(info.node, info, effects, model)
            regions.append(region)
            eval_functions[id(info.node)] = region
    for loop in model.loops:
        if type(loop) is not cst.For or not _iterates_eval_data(model, loop):
            continue
        func = enclosing_function(model, loop)
        effects = flow.loop_effects(loop)
        if not _evaluates(effects):
            continue
        if func is not None:
            info = flow._info(func)
            if info is not None and info.class_name in model.module_classes:
                continue
        regions.append(EvalRegion(loop, None, effects, model, eval_functions.get(id(func))))
    model.__dict__["_torchsanity_eval_candidates"] = regions
    return regions


def _evaluates(effects: list[Effect]) -> bool:
    kinds = {e.kind for e in effects}
    return FORWARD in kinds and not kinds & {BACKWARD, OPT_STEP, FIT}


def _needs_grad(model: ProgramModel, node: cst.CSTNode) -> bool:
    """Whether the code under ``node`` asks for gradients (``requires_grad``, ``enable_grad``,
    ``register_hook``, ``autograd.grad``); memoized per node."""
    cache = model.__dict__.setdefault("_torchsanity_needs_grad", {})
    key = id(node)
    if key not in cache:
        cache[key] = any(_asks_for_grad(n) for n in nodes_of_types(node, _NAME_OR_ATTRIBUTE))
    return cache[key]


def _asks_for_grad(node: cst.Name | cst.Attribute) -> bool:
    """A name containing ``requires_grad`` / ``enable_grad`` / ``register_hook``, or ``<...autograd>.grad...``."""
    if type(node) is cst.Name:
        return bool(_GRAD_NAME.search(node.value))
    if not node.attr.value.startswith("grad"):
        return False
    receiver = node.value
    kind = type(receiver)
    last = receiver.value if kind is cst.Name else receiver.attr.value if kind is cst.Attribute else ""
    return last.endswith("autograd")


def _iterates_eval_data(model: ProgramModel, loop: cst.For) -> bool:
    for name in iter_loader_names(model, loop.iter):
        parts = name.split(".")
        last = parts[-1]
        if _EVAL_LOADER.search(last) and (_EVAL_LOADER_KIND.search(last) or len(parts) > 1 and _EVAL_LOADER_KIND.search(parts[-2])):
            return True
        if len(parts) > 1 and re.fullmatch(r"(val|valid|validation|test|eval|dev)", last, re.I) \
                and _EVAL_LOADER_KIND.search(parts[-2]):
            return True  # dataloaders['val']
    return False


def call_sites(model: ProgramModel, func: FunctionInfo) -> list[cst.Call]:
    """Calls of ``func`` in its module (plain calls, ``self.method(...)`` for methods)."""
    by_name, by_method = calls_by_callee(model)
    return list((by_name if func.class_name is None else by_method).get(func.node.name.value, ()))


def calls_by_callee(model: ProgramModel) -> tuple[dict[str, list[cst.Call]], dict[str, list[cst.Call]]]:
    """The module's calls ``f(...)`` by ``f`` and ``x.m(...)`` by ``m``, in ``model.calls`` order (indexed once)."""
    index = model.__dict__.get("_torchsanity_calls_by_callee")
    if index is None:
        by_name: dict[str, list[cst.Call]] = {}
        by_method: dict[str, list[cst.Call]] = {}
        for call in model.calls:
            func = call.func
            if type(func) is cst.Name:
                by_name.setdefault(func.value, []).append(call)
            elif type(func) is cst.Attribute:
                by_method.setdefault(func.attr.value, []).append(call)
        index = model.__dict__["_torchsanity_calls_by_callee"] = (by_name, by_method)
    return index


def referenced_otherwise(model: ProgramModel, func: FunctionInfo, calls: list[cst.Call]) -> bool:
    """Whether the function's name is used other than by calling it (passed as a callback)."""
    call_funcs = {id(c.func) for c in calls} | {id(c.func.attr) for c in calls if isinstance(c.func, cst.Attribute)}
    for node in names_by_value(model).get(func.node.name.value, ()):
        if id(node) not in call_funcs and node is not func.node.name:
            parent = model.parent(node)
            if isinstance(parent, cst.Attribute) and id(parent) in call_funcs:
                continue
            return True
    return False


def names_by_value(model: ProgramModel) -> dict[str, list[cst.Name]]:
    """Every ``Name`` node of the module by identifier (indexed once per model: a walk of the whole module)."""
    index = model.__dict__.get("_torchsanity_names")
    if index is None:
        index = {}
        for node in nodes_of_types(model.module, _NAME):
            index.setdefault(node.value, []).append(node)
        model.__dict__["_torchsanity_names"] = index
    return index


def nodes_of_types(node: cst.CSTNode, types: frozenset[type]) -> Iterator[cst.CSTNode]:
    """The nodes under ``node`` (itself included) of one of the concrete ``types``, in no set order."""
    stack = [node]
    while stack:
        current = stack.pop()
        if type(current) in types:
            yield current
        stack.extend(iter_children(current))


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


# ---- schedulers (SAN501 / SAN502 / SAN503) ---------------------------------------------------------


@dataclass
class SchedulerInfo:
    name: str  # the dotted name it is bound to
    call: cst.Call  # the constructor call
    cls: str  # "StepLR", "CosineAnnealingLR", ...


def schedulers(model: ProgramModel) -> list[SchedulerInfo]:
    """Schedulers bound once to a name (a rebound name mixes the steps of several schedulers)."""
    out = []
    for name, bindings in model.bindings.items():
        if len(bindings) != 1:
            continue
        b = bindings[0]
        if b.kind == SCHEDULER and isinstance(b.value, cst.Call):
            qual = model.call_name(b.value) or ""
            out.append(SchedulerInfo(name, b.value, qual.rsplit(".", 1)[-1]))
    return out


def call_arg(call: cst.Call, keyword: str, position: int) -> cst.BaseExpression | None:
    """The argument passed as ``keyword=`` or at ``position`` (0-based, positional only)."""
    for a in call.args:
        if a.keyword is not None and a.keyword.value == keyword:
            return a.value
    positional = [a for a in call.args if a.keyword is None and not a.star]
    if any(a.star for a in call.args):
        return None
    return positional[position].value if len(positional) > position else None


def scheduler_steps(flow: Flow, name: str) -> list[Effect]:
    """Every `name.step()` effect in every scope of the module (helpers inlined, targets mapped)."""
    by_target = flow.__dict__.get("_sched_steps")
    if by_target is None:
        by_target = {}
        for scope in flow.all_scopes():
            for e in scope.effects:
                if e.kind == SCHED_STEP:
                    by_target.setdefault(e.target, []).append(e)
        flow.__dict__["_sched_steps"] = by_target
    return by_target.get(name, [])


def innermost_loop(e: Effect) -> cst.CSTNode | None:
    for c in reversed(e.ctx):
        if isinstance(c, LOOP_TYPES):
            return c
    return None
