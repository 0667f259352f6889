"""The training-loop model: what a loop or function *does*, in order.

For every scope (the module's top-level code, each function body) :class:`Flow` lists the effects that
matter to training-loop rules, in execution order: ``backward`` / optimizer ``step`` / ``zero_grad`` /
scheduler ``step`` / ``eval()`` / ``train()`` / model forwards / seeding calls. Helpers count where they
are called: a call to a function or method of the same module (or of a sibling module, through
``program.project``) is replaced by that function's effects, with its parameters mapped to the caller's
arguments. Each effect carries its context: the compound statements (loops, ifs, withs, ...) that enclose
it, from the scope down, including the helper call sites it was inlined through, so rules ask "is this
inside that loop / under an `if` / under `torch.no_grad()`" with identity checks on nodes.

Built lazily, once per :class:`ProgramModel` (see :func:`flow_of`), without libcst visitors or metadata.
Across versions of an edited text (:meth:`ProgramModel.build`'s ``reuse``), a function's effects are kept
while its node, the nodes of the helpers they came through and the module-level facts
(:meth:`ProgramModel.facts`) are unchanged, unless finding them asked a sibling module of the project (which
may change unseen); the effect sites are kept per top-level statement likewise (they never ask a sibling).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import libcst as cst

from .call_mapping import (
    calls_self_method,
    config_training_run,
    inherited_method,
    instance_class,
    instance_method,
    map_target,
    mode_by_flag,
    own_mode_method,
    param_mapping,
)
from .effect_sites import Site, sites_by_scope
from .flow_reuse import FunctionReuse
from .lookups import (
    bound_to,
    call_name,
    callee_name,
    enclosing_function,
    is_model_name,
    kind_of_name,
)
from .model import FunctionInfo, ProgramModel
from .name_guesses import (
    backward_takes_the_loss,
    clears_gradients,
    looks_like_model_owner,
    looks_like_optimizer,
    looks_like_scaler,
    looks_like_scheduler,
    names_a_seeding_call,
)
from .syntax import (
    CONDITIONAL_TYPES,
    LOOP_TYPES,
    chain_text,
    dotted_name,
    dotted_names_in,
    walk,
)
from .torch_api import LIGHTNING_PACKAGES, OPTIMIZER, PROCESS_SPAWNERS, SCHEDULER, seeded_by

BACKWARD = "backward"
OPT_STEP = "opt_step"
ZERO_GRAD = "zero_grad"
SCHED_STEP = "sched_step"
EVAL = "eval"
TRAIN = "train"
FORWARD = "forward"
SEED = "seed"
FIT = "fit"  # Lightning `trainer.fit(...)`, labml's `conf.run()`: training happens in the library
_HELPER = "helper"  # a call of a function of ours: its effects are inlined
_SPAWNER_NAMES = frozenset(name.rpartition(".")[2] for name in PROCESS_SPAWNERS)

# Methods whose calls may be effects themselves (``loss.backward()``, ``opt.step()``, ``model.eval()``, ...).
_EFFECT_METHODS = frozenset({"backward", "manual_backward", "step", "zero_grad", "zero_", "fill_", "detach_", "eval",
                             "train", "fit"})


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


def flow_of(program: ProgramModel) -> "Flow":
    """The (cached) flow of a program."""
    return program.cached(Flow)


class Flow:
    def __init__(self, program: ProgramModel) -> None:
        self.program = program
        self._scopes: dict[int, Scope] = {}
        self._function_effects: dict[int, list[Effect]] = {}
        self._in_progress: set[int] = set()
        self._bare_functions: dict[str, FunctionInfo] = {}
        for qual, info in program.functions.items():
            if "." not in qual:
                self._bare_functions.setdefault(qual, info)
        self._optimizer_arg_names: set[str] | None = None
        self._function_infos: dict[int, FunctionInfo] | None = None
        self._callees: dict[tuple[str, str | None], tuple[str, object] | None] = {}
        self._siblings: dict[str, Path | None] = {}  # module -> its file (None: not in the project)
        self._outside: set[tuple[str, str | None]] = set()  # callees whose resolution asked a sibling module
        self._asked_sibling = False
        self._reuse: FunctionReuse[list[Effect]] = FunctionReuse(program.facts(), program.handed_on(Flow))

    def hand_on(self) -> tuple[tuple, dict[int, tuple]]:
        """For the next version of the text: the functions' effects it may take over (:mod:`.flow_reuse`)."""
        return self._reuse.hand_on()

    # ---- scopes ----------------------------------------------------------------------------------

    def scope_node(self, node: cst.CSTNode) -> cst.CSTNode:
        return enclosing_function(self.program, node) or self.program.module

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
        yield self.scope(self.program.module)
        for info in self.program.functions.values():
            yield self.scope(info.node)

    # ---- walking ---------------------------------------------------------------------------------

    def _function(self, func: cst.FunctionDef) -> list[Effect]:
        """Effects of a function body relative to itself (cached; recursion-guarded)."""
        key = id(func)
        cached = self._function_effects.get(key)
        if cached is not None:
            self._reuse.used(func)
            return cached
        if key in self._in_progress:
            self._reuse.cut_short()
            return []
        info = self.function_info(func)
        self_class = info.class_name if info is not None else None
        out = self._reuse.carried(func, self_class, self._defined)
        if out is None:
            self._in_progress.add(key)
            self._reuse.begin()
            try:
                out = self._walk(func, self_class)
            except BaseException:
                self._reuse.cut_short()
                self._reuse.end(func, self_class, [])
                raise
            finally:
                self._in_progress.discard(key)
            self._reuse.end(func, self_class, out)
        self._function_effects[key] = out
        return out

    def _defined(self, func: cst.FunctionDef) -> bool:
        """``func`` is still a function of the program (so a call that named it names it again)."""
        info = self.function_info(func)
        return info is not None and info.node is func

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
            self._reuse.cut_short()
        return out

    def _sites(self, scope: cst.CSTNode) -> list[Site]:
        """The effect sites of the scope's own code (not of the functions, classes or lambdas in it), in
        execution order: a call comes after the calls in its arguments (found per top-level statement, kept
        across versions of the text while the module-level facts are the same)."""
        program = self.program
        if type(scope) is cst.Module:
            return [site for sites in program.per_statement_of(_statement_sites, self._reuse.facts)
                    for site in sites.get(None, ())]
        statement = program.top_statement(scope)
        if statement is None:
            return []
        return program.for_statement(_statement_sites, statement, self._reuse.facts).get(id(scope), [])

    def _may_have_effects(self, call: cst.Call) -> bool:
        """False for the calls that :meth:`_call` surely finds no effect in, whatever their scope."""
        func = call.func
        if type(func) is cst.Attribute and func.attr.value in _EFFECT_METHODS:
            return True
        func_name = callee_name(self.program, call)
        if func_name is None:
            return False
        if self.program.project is not None and func_name.partition(".")[0] in self.program.imports:
            return True  # maybe a sibling's function: kept without asking the sibling (see _statement_sites)
        if self._spawned_worker(call, func_name) is not None or func_name.endswith(".run"):
            return True  # a worker, or maybe a configuration framework's training run
        return calls_self_method(func_name) or self._callee(call, func_name, None) is not None

    def _spawned_worker(self, call: cst.Call, func_name: str) -> cst.BaseExpression | None:
        """The function ``torch.multiprocessing.spawn(worker, ...)`` (or ``start_processes``) runs, if ``call`` is one."""
        if func_name.rpartition(".")[2] not in _SPAWNER_NAMES or not call.args or call.args[0].keyword is not None:
            return None
        return call.args[0].value if call_name(self.program, call) in PROCESS_SPAWNERS else None

    def function_info(self, func: cst.FunctionDef) -> FunctionInfo | None:
        """The program's :class:`FunctionInfo` of ``func`` (indexed once)."""
        if self._function_infos is None:
            self._function_infos = {id(info.node): info for info in self.program.functions.values()}
        return self._function_infos.get(id(func))

    def _call(self, call: cst.Call, ctx: tuple[cst.CSTNode, ...], nograd: bool | None, out: list[Effect],
              self_class: str | None) -> None:
        func = call.func
        if type(func) is cst.Attribute and func.attr.value in _EFFECT_METHODS \
                and not own_mode_method(self.program, func, self_class) and self._method_call(call, ctx, nograd, out):
            return
        func_name = callee_name(self.program, call)
        if func_name is None:
            return
        if func_name.endswith(".run"):
            receiver, asked = config_training_run(self.program, call)
            if asked:
                self._reuse.cut_short()  # a sibling module's class was asked about
            if receiver is not None:
                out.append(Effect(FIT, call, call, receiver, ctx, nograd))
                return
        worker = self._spawned_worker(call, func_name)
        if worker is not None:
            self._inline_closure(worker, call, ctx, nograd, out)  # the worker runs the training
            return
        callee = self._callee(call, func_name, self_class)
        if callee is None:
            return
        kind, detail = callee
        if kind == _HELPER:
            self._inline_helper(call, ctx, nograd, out, detail)
        else:
            target, detail = (detail, None) if kind == FORWARD else (None, detail)
            out.append(Effect(kind, call, call, target, ctx, nograd, detail=detail or ""))

    def _method_call(self, call: cst.Call, ctx: tuple[cst.CSTNode, ...], nograd: bool | None,
                     out: list[Effect]) -> bool:
        """Append the effect of ``x.backward()`` / ``opt.step()`` / ``model.eval()`` / ...; False when the
        call is none of those after all (``env.step()``)."""
        program = self.program
        func = call.func
        qual = call_name(program, call)
        args = [a for a in call.args if a.keyword is None and not a.star]
        attr = func.attr.value
        recv = func.value
        recv_name = dotted_name(recv)
        if attr == "backward":
            if qual in ("torch.autograd.backward",) or (
                recv_name and backward_takes_the_loss(recv_name) and args
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
            kind = self._step_kind(program, recv_name)
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
        if attr in ("zero_", "fill_", "detach_") and "grad" in (dotted_name(recv) or chain_text(recv)).split("."):
            out.append(Effect(ZERO_GRAD, call, call, None, ctx, nograd))
            return True
        if attr in ("eval", "train") and not (recv_name and looks_like_model_owner(recv_name)) \
                and qual not in ("torch.nn.Module.train",) and not (type(recv) is cst.Name and recv.value in program.imports):
            if not call.args and mode_by_flag(program, call, recv_name):
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
        if attr == "fit" and recv_name and self._is_lightning_trainer(program, recv_name):
            out.append(Effect(FIT, call, call, recv_name, ctx, nograd))
            return True
        return False

    def _callee(self, call: cst.Call, func_name: str, self_class: str | None):
        """What calling ``func_name`` does, as (SEED, what it seeds), (_HELPER, ``_resolve``'s answer),
        (ZERO_GRAD, None), (FORWARD, the model it runs) or None. It depends on the name (and, for ``self.method``, on
        ``self_class``) only: memoized."""
        key = (func_name, self_class if calls_self_method(func_name) else None)
        if key in self._callees:
            if key in self._outside:
                self._reuse.cut_short()
            return self._callees[key]
        asked, self._asked_sibling = self._asked_sibling, False
        callee = self._callees[key] = self._new_callee(call, func_name, self_class)
        if self._asked_sibling:
            self._outside.add(key)
            self._reuse.cut_short()
        self._asked_sibling = self._asked_sibling or asked
        return callee

    def _new_callee(self, call: cst.Call, func_name: str, self_class: str | None):
        program = self.program
        seed = self._seed_kind(program, call, call_name(program, call))
        resolved = self._resolve(program, call, self_class) if seed is None else None
        if seed is not None:
            callee = (SEED, seed)
        elif resolved is not None:
            callee = (_HELPER, resolved)
        elif clears_gradients(func_name):
            callee = (ZERO_GRAD, None)  # an unresolved helper whose name says it clears gradients
        elif (model := self._forward_target(program, call)) is not None:
            callee = (FORWARD, model)
        else:
            callee = None
        return callee

    def _inline_helper(self, call: cst.Call, ctx: tuple[cst.CSTNode, ...], nograd: bool | None, out: list[Effect],
                       resolved) -> None:
        """Append the effects of the helper ``call`` calls, its parameters mapped to the call's arguments."""
        target_model, info, bound_self = resolved
        effects = self._function_in(target_model, info.node)
        mapping = param_mapping(info.node, call, bool(bound_self))
        if isinstance(bound_self, str):  # ``trainer.train()``: the method's ``self`` is ``trainer``
            params = (*info.node.params.posonly_params, *info.node.params.params)
            if params:
                mapping[params[0].name.value] = bound_self
        for e in effects:
            out.append(Effect(
                e.kind,
                call,
                e.inner,
                map_target(e.target, mapping),
                ctx + (call,) + e.ctx,
                True if (nograd is True or e.nograd is True) else (None if (nograd is None or e.nograd is None) else False),
                (call,) + e.via,
                e.flag,
                e.arg if target_model is self.program else None,
                e.detail,
            ))

    def _function_in(self, program: ProgramModel, func: cst.FunctionDef) -> list[Effect]:
        if program is self.program:
            return self._function(func)
        other = flow_of(program)
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

    def _step_kind(self, program: ProgramModel, recv_name: str | None) -> str | None:
        if not recv_name:
            return None
        kind = kind_of_name(program, recv_name)
        if kind in (SCHEDULER, OPTIMIZER):
            return kind
        if looks_like_scheduler(recv_name):
            return SCHEDULER
        if looks_like_scaler(recv_name) or bound_to(program, recv_name, ("GradScaler",)):
            return "scaler"
        if looks_like_optimizer(recv_name):
            return OPTIMIZER
        return None

    def is_scheduler(self, name: str | None) -> bool:
        return self._step_kind(self.program, name) == SCHEDULER

    def _is_lightning_trainer(self, program: ProgramModel, name: str) -> bool:
        for b in program.bindings.get(name, []):
            if isinstance(b.value, cst.Call):
                q = program.call_name(b.value) or ""
                if q.endswith("Trainer") and q.startswith(LIGHTNING_PACKAGES):
                    return True
        return False

    def _seed_kind(self, program: ProgramModel, call: cst.Call, qual: str | None) -> str | None:
        known = seeded_by(qual)
        if known is not None or not names_a_seeding_call(qual):
            return known
        return None if self._resolve(program, call, None) is not None else "all"  # a helper of ours is inlined

    def _forward_target(self, program: ProgramModel, call: cst.Call) -> str | None:
        """The model ``call`` runs forward (``model`` for ``model(x)`` and ``model.generate(...)``), or None."""
        name = dotted_name(call.func)
        if name is None or name in program.imports or name in ("self", "super"):
            return None
        if name in self._bare_functions or name in program.classes:
            return None
        if name.endswith(".generate") and is_model_name(program, name[: -len(".generate")]):
            return name[: -len(".generate")]  # `model.generate(...)` (Hugging Face): the model's forward, repeated
        return name if is_model_name(program, name) else None

    def _resolve(self, program: ProgramModel, call: cst.Call, self_class: str | None):
        """(model, FunctionInfo, bound_self) of the function ``call`` calls, when it is ours; ``bound_self`` is
        True for ``self.method()``, the receiver's name for a method of an instance (``trainer.train()``)."""
        func = call.func
        if isinstance(func, cst.Name):
            name = func.value
            if program is self.program:
                info = self._bare_functions.get(name)
            else:
                info = program.functions.get(name)
            if info is not None:
                return program, info, False
            instance_of = instance_class(program, name)
            if instance_of is not None:  # ``trainer()``: the class's ``__call__``
                return instance_method(program, instance_of, "__call__", name)
            if name in program.imports and program.project is not None:
                module, _, fname = program.imports[name].rpartition(".")
                other = self._sibling_module(module, fname) if module else None
                info = other.functions.get(fname) if other is not None else None
                if info is not None and info.class_name is None:
                    return other, info, False
            return None
        if isinstance(func, cst.Attribute):
            recv = dotted_name(func.value)
            if recv == "self" and self_class is not None:
                return instance_method(program, self_class, func.attr.value, True)
            instance_of = instance_class(program, recv) if recv and "." not in recv else None
            found = instance_method(program, instance_of, func.attr.value, recv) if instance_of is not None else None
            if found is None and recv and "." not in recv and program.project is not None \
                    and recv not in program.imports and (instance_of is not None or recv in program.bindings):
                found, asked = inherited_method(program, instance_of, recv, func.attr.value)
                self._asked_sibling = self._asked_sibling or asked
            if found is not None or instance_of is not None:
                return found
            if recv and "." not in recv and program.project is not None and recv in program.imports:
                other = self._sibling_module(program.imports[recv], func.attr.value)
                if other is not None:
                    info = other.functions.get(func.attr.value)
                    if info is not None:
                        return other, info, False
        return None

    def _sibling_module(self, module: str, function: str) -> ProgramModel | None:
        """The model of ``module`` as imported here, when the project has its file and that file may define
        ``function`` (a module whose text has no ``def function`` is not parsed for it). The file is looked
        up once per module: each lookup asks the file system."""
        project = self.program.project
        self._asked_sibling = True
        try:
            if module not in self._siblings:
                self._siblings[module] = project.module_file(module, self.program.path)
            path = self._siblings[module]
            return project.model_for(path) if path is not None and project.may_define(path, function) else None
        except Exception:  # a broken sibling never breaks this file
            self._siblings.setdefault(module, None)
            return None

    # ---- queries used by several rules ----------------------------------------------------------

    def optimizer_arg_names(self) -> set[str]:
        """Dotted names mentioned in the arguments of optimizer constructors in this module."""
        if self._optimizer_arg_names is None:
            names: set[str] = set()
            for bs in self.program.bindings.values():
                for b in bs:
                    if b.kind == OPTIMIZER and isinstance(b.value, cst.Call):
                        for arg in b.value.args:
                            names.update(dotted_names_in(arg.value))
            self._optimizer_arg_names = names
        return self._optimizer_arg_names


def _statement_sites(program: ProgramModel, statement: cst.CSTNode) -> dict[int | None, list[Site]]:
    """The effect sites of the scopes in one top-level statement, by id of their FunctionDef (None: the module's
    own code). They read the statement and the module-level facts only (the calls kept are those whose callee
    may have effects): kept per statement (:meth:`ProgramModel.for_statement`)."""
    flow = flow_of(program)
    calls = [call for call in program.statement_calls(statement) if flow._may_have_effects(call)]
    sites: dict[int | None, list[Site]] = dict(sites_by_scope(program, calls, statement))
    sites[None] = sites.pop(id(program.module), [])
    return sites


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


def innermost_loop(e: Effect) -> cst.CSTNode | None:
    """The innermost loop an effect is in (helper call sites included)."""
    for c in reversed(e.ctx):
        if isinstance(c, LOOP_TYPES):
            return c
    return None


def inner_loop_has(loop: cst.CSTNode, effects: list[Effect], *kinds: str) -> bool:
    """Whether some loop nested in ``loop`` holds effects of all ``kinds`` (a per-batch loop inside an
    epoch loop that does the work itself)."""
    kinds_by_loop: dict[int, set[str]] = {}
    for e in effects:
        for c in e.ctx_after(loop):
            if isinstance(c, LOOP_TYPES):
                kinds_by_loop.setdefault(id(c), set()).add(e.kind)
    return any(all(kind in found for kind in kinds) for found in kinds_by_loop.values())
