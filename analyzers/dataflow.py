"""Light dataflow on top of the program model: what a name holds at a given use.

Built lazily, once per :class:`ProgramModel` (:func:`dataflow`), without libcst metadata. It answers:

- :meth:`Dataflow.reaching` — the binding of a name that reaches a use (same scope, last one before the
  use, and only when that binding is unconditional with respect to the use: a binding inside an ``if``,
  ``try`` or loop that does not also hold the use is "unknown");
- :meth:`Dataflow.definitions` — the expressions a name may hold, following bindings, function parameters
  (through the call sites of module-level functions) and module-level names; all-or-nothing;
- :meth:`Dataflow.activation` — whether a tensor expression is the output of ``softmax``, ``log_softmax``,
  ``sigmoid`` or of a layer producing raw logits (``Linear`` / ``Conv``), including calls of models
  whose last layer is one of those (``nn.Sequential(..., nn.Softmax(dim=1))``, a ``forward`` returning
  ``F.softmax(...)``), across files through ``model.project``;
- :meth:`Dataflow.module_of` — which module (torch.nn constructor call or nn.Module class) an expression is.

Everything answers ``None`` when it cannot tell: callers stay silent then.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterator

import libcst as cst

from .flow import call_name, callee_name, calls_by_callee, enclosing_function
from .model import Binding, ProgramModel, dotted_name, iter_children, walk

SOFTMAX = "softmax"
LOG_SOFTMAX = "log_softmax"
SIGMOID = "sigmoid"
LOGITS = "logits"

_MAX_DEPTH = 12
_MAX_DEFINITIONS = 16

_FUNCTIONAL = {
    "torch.softmax": SOFTMAX,
    "torch.nn.functional.softmax": SOFTMAX,
    "torch.special.softmax": SOFTMAX,
    "torch.log_softmax": LOG_SOFTMAX,
    "torch.nn.functional.log_softmax": LOG_SOFTMAX,
    "torch.special.log_softmax": LOG_SOFTMAX,
    "torch.sigmoid": SIGMOID,
    "torch.nn.functional.sigmoid": SIGMOID,
    "torch.special.expit": SIGMOID,
}
_METHODS = {"softmax": SOFTMAX, "log_softmax": LOG_SOFTMAX, "sigmoid": SIGMOID}
_LAYER_ACTIVATION = {
    "torch.nn.Softmax": SOFTMAX,
    "torch.nn.LogSoftmax": LOG_SOFTMAX,
    "torch.nn.Sigmoid": SIGMOID,
    "torch.nn.Linear": LOGITS,
    "torch.nn.LazyLinear": LOGITS,
    "torch.nn.Bilinear": LOGITS,
    "torch.nn.Conv1d": LOGITS,
    "torch.nn.Conv2d": LOGITS,
    "torch.nn.Conv3d": LOGITS,
}
# Ops that keep what a tensor is (probabilities stay probabilities).
_PASS_THROUGH = frozenset(
    {"float", "double", "half", "bfloat16", "to", "cuda", "cpu", "squeeze", "unsqueeze", "view", "reshape",
     "flatten", "contiguous", "clone"}
)
_CONDITIONAL = (cst.If, cst.Try, cst.For, cst.While, cst.Match) if hasattr(cst, "Match") else (
    cst.If, cst.Try, cst.For, cst.While)
_WRAPPERS = frozenset({"torch.compile", "torch.nn.DataParallel", "torch.nn.parallel.DistributedDataParallel",
                       "torch.nn.parallel.DataParallel"})
_MODULE_MOVES = frozenset({"to", "cuda", "cpu", "train", "eval", "float", "double", "half", "bfloat16",
                           "requires_grad_", "to_empty"})


@dataclass(frozen=True)
class Activation:
    """What a tensor expression is the output of. ``call`` is the softmax / sigmoid call itself when it
    is visible in this module (``F.softmax(x, 1)``), ``source`` its input; both None for a model output."""

    kind: str
    call: cst.Call | None = None
    source: cst.BaseExpression | None = None
    model: ProgramModel | None = None


@dataclass(frozen=True)
class ModuleRef:
    """A module object: a torch.nn constructor call (``qualname`` set) or a local nn.Module class."""

    model: ProgramModel
    call: cst.Call | None = None
    qualname: str | None = None
    classdef: cst.ClassDef | None = None


@dataclass(frozen=True)
class ForTarget:
    """A name bound as the target of a ``for`` loop."""

    loop: cst.For


def dataflow(model: ProgramModel) -> "Dataflow":
    """The model's dataflow, built once."""
    flow = model.__dict__.get("_dataflow")
    if flow is None:
        flow = Dataflow(model)
        model.__dict__["_dataflow"] = flow
    return flow


def name_tokens(name: str) -> list[str]:
    """``train_loader`` → [train, loader]; ``valLoader`` → [val, loader]; ``testset`` → [test, set]."""
    parts = re.split(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])|\d+", name)
    out: list[str] = []
    for part in parts:
        part = part.lower()
        if not part:
            continue
        for suffix in ("dataloader", "loader", "dataset", "transforms", "transform", "set", "data", "ds", "dl",
                       "tfms", "tfm", "tf", "aug", "iter", "dir", "path", "root", "folder"):
            if part.endswith(suffix) and len(part) > len(suffix):
                out.extend([part[: -len(suffix)], suffix])
                break
        else:
            out.append(part)
    return out


class Dataflow:
    def __init__(self, model: ProgramModel) -> None:
        self.model = model
        self._params: dict[int, dict[str, cst.Param]] = {}
        self._last_layer: dict[int, str | None] = {}
        self._orders: dict[int, dict[int, int]] = {}
        self._names: dict[int, dict[str, list[cst.Name]]] = {}
        self._grouped: dict[str, dict[int, list[Binding]]] = {}
        self._definitions: dict[int, list | None] = {}
        self._function_classes: dict[int, str | None] | None = None
        self._loss_calls: list[tuple[cst.Call, str]] | None = None

    # ---- order and scope -------------------------------------------------------------------------

    def scope(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        return enclosing_function(self.model, node)

    def _chain(self, node: cst.CSTNode) -> list[cst.CSTNode]:
        chain = [node]
        chain.extend(self.model.ancestors(node))
        return chain

    def precedes(self, a: cst.CSTNode, b: cst.CSTNode) -> bool:
        """``a`` comes before ``b`` in the source and does not contain it."""
        chain_a = self._chain(a)
        ids_a = {id(n): i for i, n in enumerate(chain_a)}
        previous = None
        for node in self._chain(b):
            index = ids_a.get(id(node))
            if index is not None:
                if index == 0 or previous is None:
                    return False  # a contains b, or b contains a
                order = self._child_order(node)
                first, second = order.get(id(chain_a[index - 1])), order.get(id(previous))
                return first is not None and second is not None and first < second
            previous = node
        return False

    def _child_order(self, node: cst.CSTNode) -> dict[int, int]:
        """Positions of ``node``'s children, cached (a module or function body can be long)."""
        order = self._orders.get(id(node))
        if order is None:
            order = {id(child): i for i, child in enumerate(iter_children(node))}
            self._orders[id(node)] = order
        return order

    def calls_named(self, name: str) -> list[cst.Call]:
        """The calls ``name(...)`` in this module."""
        return calls_by_callee(self.model)[0].get(name, [])

    def names_in(self, scope: cst.CSTNode) -> dict[str, list[cst.Name]]:
        """Every ``Name`` node inside ``scope`` by identifier (index built once per scope)."""
        index = self._names.get(id(scope))
        if index is None:
            index = {}
            for node in walk(scope):
                if type(node) is cst.Name:
                    index.setdefault(node.value, []).append(node)
            self._names[id(scope)] = index
        return index

    def _same_branch(self, binding_node: cst.CSTNode, use: cst.CSTNode, scope: cst.CSTNode | None) -> bool:
        """The binding is not inside an ``if`` / ``try`` / loop that does not also contain the use, and does
        not sit in another branch of a statement that holds both."""
        use_ids = {id(n) for n in self._chain(use)}
        previous = binding_node
        for ancestor in self.model.ancestors(binding_node):
            if ancestor is scope:
                return True
            if id(ancestor) in use_ids:
                if isinstance(ancestor, (cst.If, cst.Try)):
                    # both under the same if/try: only the same branch counts
                    for node in self._chain(use):
                        if self.model.parent(node) is ancestor:
                            return node is previous
                return True
            if isinstance(ancestor, _CONDITIONAL):
                return False
            previous = ancestor
        return True

    def params(self, function: cst.FunctionDef) -> dict[str, cst.Param]:
        cached = self._params.get(id(function))
        if cached is None:
            p = function.params
            cached = {
                param.name.value: param
                for param in (*p.posonly_params, *p.params, *p.kwonly_params,
                              *(x for x in (p.star_arg, p.star_kwarg) if isinstance(x, cst.Param)))
            }
            self._params[id(function)] = cached
        return cached

    def class_of(self, function: cst.FunctionDef | None) -> str | None:
        if function is None:
            return None
        if self._function_classes is None:
            self._function_classes = {id(info.node): info.class_name for info in self.model.functions.values()}
        return self._function_classes.get(id(function))

    # ---- bindings --------------------------------------------------------------------------------

    def reaching(self, name: str, use: cst.CSTNode) -> Binding | ForTarget | None:
        """The binding of ``name`` (in the use's scope) that reaches ``use``; None if there is none or if
        it is conditional."""
        scope = self.scope(use)
        in_scope = self._bindings_by_scope(name).get(id(scope), ())
        last: Binding | None = None
        if in_scope:
            use_ids = {id(n) for n in self._chain(use)}
            # bindings are in source order: find the last one that starts before the use...
            lo, hi = 0, len(in_scope)
            while lo < hi:
                mid = (lo + hi) // 2
                node = in_scope[mid].node
                if id(node) in use_ids or self.precedes(node, use):
                    lo = mid + 1
                else:
                    hi = mid
            index = lo - 1
            # ...and is not the statement holding the use (`x = f(x)` reads the previous x)
            while index >= 0 and id(in_scope[index].node) in use_ids:
                index -= 1
            last = in_scope[index] if index >= 0 else None
        if "." not in name:
            for ancestor in self.model.ancestors(use):
                if ancestor is scope:
                    break
                if type(ancestor) is cst.For and name in _target_names(ancestor.target) and not any(
                    n is ancestor.iter for n in self._chain(use)
                ):
                    if last is None or self.precedes(last.node, ancestor):
                        return ForTarget(ancestor)
                    break
        if last is None or not self._same_branch(last.node, use, scope):
            return None
        return last

    def _bindings_by_scope(self, name: str) -> dict[int, list[Binding]]:
        grouped = self._grouped.get(name)
        if grouped is None:
            grouped = {}
            for binding in self.model.bindings.get(name, ()):
                grouped.setdefault(id(self.scope(binding.node)), []).append(binding)
            self._grouped[name] = grouped
        return grouped

    def definitions(self, expr: cst.BaseExpression | None, depth: int = 0) -> list[tuple["Dataflow", cst.BaseExpression]] | None:
        """The expressions ``expr`` may evaluate to, through names; None when some cannot be known (or when
        there are too many to reason about). Memoised per node."""
        if expr is None or depth > _MAX_DEPTH:
            return None
        key = id(expr)
        if key in self._definitions:
            return self._definitions[key]
        self._definitions[key] = None  # cycles (`x = f(x)` through parameters) resolve to "unknown"
        result = self._definitions_of(expr, depth)
        if result is not None and len(result) > _MAX_DEFINITIONS:
            result = None
        self._definitions[key] = result
        return result

    def _definitions_of(self, expr: cst.BaseExpression, depth: int) -> list[tuple["Dataflow", cst.BaseExpression]] | None:
        name = dotted_name(expr)
        if name is None:
            return [(self, expr)]
        if name.startswith("self."):
            return self._attribute_definitions(name, self.scope(expr), depth)
        if "." in name and name not in self.model.bindings:
            return None  # `x.to`: an attribute nothing in the module assigns
        function = self.scope(expr)
        binding = self.reaching(name, expr)
        if binding is not None:
            if isinstance(binding, ForTarget) or binding.value is None:
                return None
            return self.definitions(binding.value, depth + 1)
        if "." in name:
            return None
        if function is not None:
            if any(self.scope(b.node) is function for b in self.model.bindings.get(name, ())):
                return None  # bound locally, but not before this use (or conditionally)
            if name in self.params(function):
                return self._argument_definitions(function, name, depth)
        # A module-level name (used inside a function, or later at module level).
        globals_ = [b for b in self.model.bindings.get(name, ()) if self.scope(b.node) is None]
        if not globals_ or any(b.value is None for b in globals_):
            return None
        if function is None and not all(self.precedes(b.node, expr) for b in globals_):
            return None
        out: list[tuple[Dataflow, cst.BaseExpression]] = []
        for b in globals_:
            sub = self.definitions(b.value, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return out

    def _attribute_definitions(self, name: str, function: cst.FunctionDef | None, depth: int):
        """``self.fc``: every assignment to it in the methods of the same class."""
        class_name = self.class_of(function)
        if class_name is None:
            return None
        found = [b for b in self.model.bindings.get(name, ())
                 if self.class_of(self.scope(b.node)) == class_name]
        if not found or any(b.value is None for b in found):
            return None
        out = []
        for b in found:
            sub = self.definitions(b.value, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return out

    def _argument_definitions(self, function: cst.FunctionDef, name: str, depth: int):
        """A parameter of a module-level function: the arguments passed at its call sites here."""
        if self.class_of(function) is not None or self.model.parent(function) is not None and not isinstance(
            self.model.parent(function), cst.Module
        ):
            return None
        if function.decorators:
            return None
        params = function.params
        positional = [p.name.value for p in (*params.posonly_params, *params.params)]
        fname = function.name.value
        out = []
        sites = self.calls_named(fname)
        if len(sites) > _MAX_DEFINITIONS:
            return None
        for call in sites:
            arg_value = None
            position = 0
            for arg in call.args:
                if arg.star:
                    return None
                if arg.keyword is not None:
                    if arg.keyword.value == name:
                        arg_value = arg.value
                elif position < len(positional):
                    if positional[position] == name:
                        arg_value = arg.value
                    position += 1
            if arg_value is None:
                return None
            sub = self.definitions(arg_value, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return out or None

    # ---- modules ---------------------------------------------------------------------------------

    def module_of(self, expr: cst.BaseExpression | None, depth: int = 0) -> list[ModuleRef] | None:
        """Which module object(s) ``expr`` is; None when unknown."""
        defs = self.definitions(expr, depth)
        if not defs:
            return None
        out: list[ModuleRef] = []
        for flow, value in defs:
            ref = flow._module_of_value(value, depth + 1)
            if ref is None:
                return None
            out.append(ref)
        return out

    def _module_of_value(self, value: cst.BaseExpression, depth: int) -> ModuleRef | None:
        if depth > _MAX_DEPTH or not isinstance(value, cst.Call):
            return None
        model = self.model
        func = value.func
        if isinstance(func, cst.Attribute) and func.attr.value in _MODULE_MOVES and dotted_name(func) is not None \
                and model.qualname(func) == dotted_name(func):
            # `Net().to(device)` / `model.cuda()`: the receiver is the module.
            refs = self.module_of(func.value, depth + 1)
            return refs[0] if refs and len(refs) == 1 else None
        if isinstance(func, cst.Attribute) and func.attr.value in _MODULE_MOVES and isinstance(func.value, cst.Call):
            return self._module_of_value(func.value, depth + 1)
        qual = model.call_name(value)
        if qual is None:
            return None
        if qual in _WRAPPERS and value.args:
            refs = self.module_of(value.args[0].value, depth + 1)
            return refs[0] if refs and len(refs) == 1 else None
        if qual.startswith("torch.nn.") and qual.rsplit(".", 1)[-1][:1].isupper():
            return ModuleRef(model, call=value, qualname=qual)
        if "." not in qual and qual in model.classes:
            if qual in model.module_classes:
                return ModuleRef(model, call=value, classdef=model.classes[qual])
            return None
        if isinstance(func, cst.Name) and model.project is not None and func.value in model.imports:
            try:
                resolved = model.project.resolve(model, func.value)
            except Exception:  # a broken sibling never breaks this file
                resolved = None
            if resolved is not None:
                other, other_name = resolved
                classdef = other.classes.get(other_name)
                if classdef is not None and other_name in other.module_classes:
                    return ModuleRef(other, call=value, classdef=classdef)
        return None

    def last_layer(self, ref: ModuleRef, depth: int = 0) -> str | None:
        """SOFTMAX / LOG_SOFTMAX / SIGMOID / LOGITS for what the module's output is, else None."""
        if depth > _MAX_DEPTH:
            return None
        if ref.model is not self.model:
            return dataflow(ref.model).last_layer(ref, depth)
        if ref.qualname is not None:
            if ref.qualname in _LAYER_ACTIVATION:
                return _LAYER_ACTIVATION[ref.qualname]
            if ref.qualname == "torch.nn.Sequential" and ref.call is not None:
                positional = [a for a in ref.call.args if a.keyword is None]
                if not positional or positional[-1].star:
                    return None
                refs = self.module_of(positional[-1].value, depth + 1)
                if not refs or len(refs) != 1:
                    return None
                return self.last_layer(refs[0], depth + 1)
            return None
        if ref.classdef is None:
            return None
        key = id(ref.classdef)
        if key in self._last_layer:
            return self._last_layer[key]
        self._last_layer[key] = None  # recursion guard
        result = self._class_output(ref.classdef, depth)
        self._last_layer[key] = result
        return result

    def _class_output(self, classdef: cst.ClassDef, depth: int) -> str | None:
        info = self.model.functions.get(f"{classdef.name.value}.forward")
        if info is None:
            return None
        kinds = set()
        for node in _function_nodes(info.node):
            if isinstance(node, cst.Return):
                if node.value is None:
                    return None
                act = self.activation(node.value, depth + 1)
                if act is None:
                    return None
                kinds.add(act.kind)
            elif isinstance(node, (cst.Yield, cst.Raise)):
                if isinstance(node, cst.Yield):
                    return None
        return kinds.pop() if len(kinds) == 1 else None

    # ---- activations -----------------------------------------------------------------------------

    def activation(self, expr: cst.BaseExpression | None, depth: int = 0) -> Activation | None:
        """What ``expr`` is the output of (softmax, log_softmax, sigmoid, raw logits), else None."""
        if expr is None or depth > _MAX_DEPTH:
            return None
        if isinstance(expr, cst.Call):
            return self._call_activation(expr, depth)
        if dotted_name(expr) is not None and not dotted_name(expr).startswith("self."):
            defs = self.definitions(expr, depth)
            if not defs:
                return self._unpacked_activation(expr, depth) if isinstance(expr, cst.Name) else None
            acts = [flow.activation(value, depth + 1) if value is not expr else None for flow, value in defs]
            if any(a is None for a in acts) or len({a.kind for a in acts}) != 1:
                return None
            return acts[0] if len(acts) == 1 else Activation(acts[0].kind)
        return None

    def _call_activation(self, call: cst.Call, depth: int) -> Activation | None:
        model = self.model
        qual = model.call_name(call)
        func = call.func
        if qual in _FUNCTIONAL:
            source = _first_arg(call, "input")
            return Activation(_FUNCTIONAL[qual], call, source, model)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver_name = dotted_name(func.value)
            is_module_path = receiver_name is not None and receiver_name.split(".")[0] in model.imports
            if method in _METHODS and not is_module_path:
                return Activation(_METHODS[method], call, func.value, model)
            if method in _PASS_THROUGH and not is_module_path:
                inner = self.activation(func.value, depth + 1)
                return Activation(inner.kind) if inner is not None else None
        if isinstance(func, cst.Attribute) and func.attr.value == "forward" and dotted_name(func.value) is not None:
            func = func.value  # `model.forward(x)` computes what `model(x)` does
            qual = model.qualname(func)
        if isinstance(func, cst.Call):
            # `nn.Softmax(dim=1)(x)`
            ref = self._module_of_value(func, depth + 1)
            if ref is not None:
                kind = self.last_layer(ref, depth + 1)
                return Activation(kind) if kind is not None else None
            return None
        if dotted_name(func) is None or (qual is not None and qual.split(".")[0] in ("torch", "numpy", "np")):
            return None
        refs = self.module_of(func, depth + 1)
        if not refs:
            helper = self._helper(func)
            kind = self._returned(helper, depth + 1) if helper is not None else None
            return Activation(kind) if kind is not None else None
        kinds = {self.last_layer(ref, depth + 1) for ref in refs}
        if len(kinds) != 1 or None in kinds:
            return None
        kind = kinds.pop()
        return Activation(kind) if kind is not None else None

    def _helper(self, func: cst.BaseExpression) -> cst.FunctionDef | None:
        """The module-level function of this module that ``func`` names (``predict`` in ``predict(m, x)``)."""
        if not isinstance(func, cst.Name) or func.value in self.model.imports:
            return None
        info = self.model.functions.get(func.value)
        if info is None or info.class_name is not None or info.decorators:
            return None
        return info.node if self.model.parent(info.node) is self.model.module else None

    def _returned(self, function: cst.FunctionDef, depth: int, index: int | None = None, size: int = 0) -> str | None:
        """The activation every ``return`` of ``function`` gives (its ``index``-th element when the returns are
        tuples of ``size``), else None."""
        kinds = set()
        for node in _function_nodes(function):
            if isinstance(node, cst.Yield):
                return None
            if not isinstance(node, cst.Return):
                continue
            value = node.value
            if index is not None:
                if not isinstance(value, cst.Tuple) or len(value.elements) != size \
                        or any(isinstance(e, cst.StarredElement) for e in value.elements):
                    return None
                value = value.elements[index].value
            act = self.activation(value, depth + 1) if value is not None else None
            if act is None:
                return None
            kinds.add(act.kind)
        return kinds.pop() if len(kinds) == 1 else None

    def _unpacked_activation(self, expr: cst.Name, depth: int) -> Activation | None:
        """``probs, logits = model(x)`` / ``= helper(x)``: the element of what the forward (or the helper)
        returns, when every return is a tuple of that size."""
        binding = self.reaching(expr.value, expr)
        if not isinstance(binding, Binding) or binding.value is not None or not isinstance(binding.node, cst.Assign):
            return None
        targets = binding.node.targets
        value = binding.node.value
        if len(targets) != 1 or not isinstance(targets[0].target, (cst.Tuple, cst.List)) or not isinstance(value, cst.Call):
            return None
        elements = targets[0].target.elements
        if any(isinstance(e, cst.StarredElement) for e in elements):
            return None
        index = next((i for i, e in enumerate(elements) if isinstance(e.value, cst.Name) and e.value.value == expr.value), None)
        if index is None or depth > _MAX_DEPTH:
            return None
        func = value.func
        if isinstance(func, cst.Attribute) and func.attr.value == "forward":
            func = func.value
        if dotted_name(func) is None:
            return None
        functions = []
        refs = self.module_of(func, depth + 1)
        if refs:
            for ref in refs:
                info = ref.model.functions.get(f"{ref.classdef.name.value}.forward") if ref.classdef is not None else None
                if info is None:
                    return None
                functions.append((dataflow(ref.model), info.node))
        else:
            helper = self._helper(func)
            if helper is None:
                return None
            functions.append((self, helper))
        kinds = {flow._returned(node, depth + 1, index, len(elements)) for flow, node in functions}
        if len(kinds) != 1 or None in kinds:
            return None
        return Activation(kinds.pop())

    # ---- losses ----------------------------------------------------------------------------------

    def loss_calls(self) -> Iterator[tuple[cst.Call, str]]:
        """The module's calls that compute a loss, with its kind (:func:`loss_of_call`), in order. Found
        once, lazily: the first pass interleaves with its consumer's queries as a plain loop would."""
        if self._loss_calls is not None:
            yield from self._loss_calls
            return
        found = []
        for call in self.model.calls:
            kind = loss_of_call(self, call) if call.args else None
            if kind is not None:
                found.append((call, kind))
                yield call, kind
        self._loss_calls = found

    # ---- tensors ---------------------------------------------------------------------------------

    def shape_unpack(self, name: str, use: cst.CSTNode) -> tuple[str, int, int, Binding] | None:
        """``n, c, h, w = x.shape`` (or ``x.size()``) reaching ``use``: (receiver, index, ndim, binding)."""
        binding = self.reaching(name, use)
        if not isinstance(binding, Binding) or binding.value is not None or not isinstance(binding.node, cst.Assign):
            return None
        assign = binding.node
        if len(assign.targets) != 1 or not isinstance(assign.targets[0].target, (cst.Tuple, cst.List)):
            return None
        elements = assign.targets[0].target.elements
        if any(isinstance(e, cst.StarredElement) for e in elements):
            return None
        receiver = _shape_receiver(assign.value)
        if receiver is None:
            return None
        for index, element in enumerate(elements):
            if isinstance(element.value, cst.Name) and element.value.value == name:
                return receiver, index, len(elements), binding
        return None


CROSS_ENTROPY = "cross_entropy"
NLL = "nll"
BCE_WITH_LOGITS = "bce_with_logits"
BCE = "bce"
_LOSS_FUNCTIONS = {
    "torch.nn.functional.cross_entropy": CROSS_ENTROPY,
    "torch.nn.functional.nll_loss": NLL,
    "torch.nn.functional.binary_cross_entropy_with_logits": BCE_WITH_LOGITS,
    "torch.nn.functional.binary_cross_entropy": BCE,
}
_LOSS_CLASSES = {
    "torch.nn.CrossEntropyLoss": CROSS_ENTROPY,
    "torch.nn.modules.loss.CrossEntropyLoss": CROSS_ENTROPY,
    "torch.nn.NLLLoss": NLL,
    "torch.nn.modules.loss.NLLLoss": NLL,
    "torch.nn.BCEWithLogitsLoss": BCE_WITH_LOGITS,
    "torch.nn.modules.loss.BCEWithLogitsLoss": BCE_WITH_LOGITS,
    "torch.nn.BCELoss": BCE,
    "torch.nn.modules.loss.BCELoss": BCE,
}


def loss_of_call(flow: Dataflow, call: cst.Call) -> str | None:
    """CROSS_ENTROPY / NLL / BCE_WITH_LOGITS / BCE when ``call`` computes that loss, else None:
    ``F.cross_entropy(...)``, ``criterion(...)`` with ``criterion = nn.CrossEntropyLoss()``,
    ``nn.NLLLoss()(...)``, ``loss_fn = F.nll_loss; loss_fn(...)``."""
    model = flow.model
    func = call.func
    if type(func) is cst.Call:
        return _LOSS_CLASSES.get(call_name(model, func) or "")
    name = callee_name(model, call)
    if name is None:
        return None
    qual = call_name(model, call)
    if qual in _LOSS_FUNCTIONS:
        return _LOSS_FUNCTIONS[qual]
    if qual is not None and qual.split(".")[0] in ("torch", "numpy", "np") or name.split(".")[0] in model.imports:
        return None
    defs = flow.definitions(func)
    if not defs:
        return None
    kinds = set()
    for other, value in defs:
        if isinstance(value, cst.Call):
            kinds.add(_LOSS_CLASSES.get(other.model.call_name(value) or ""))
        else:
            kinds.add(_LOSS_FUNCTIONS.get(other.model.qualname(value) or ""))
    return kinds.pop() if len(kinds) == 1 else None


def loss_input(call: cst.Call) -> cst.Arg | None:
    """The argument that holds the prediction (first positional, or ``input=``)."""
    for arg in call.args:
        if arg.star:
            return None
        if arg.keyword is None or arg.keyword.value == "input":
            return arg
    return None



def loss_inputs(model: ProgramModel, loss_kind: str):
    """``(flow, call, input argument, activation of that input)`` for every call of a loss of
    ``loss_kind`` in the module; the dataflow is built only when the module calls anything."""
    if not model.calls:
        return
    flow = dataflow(model)
    for call, kind in flow.loss_calls():
        if kind != loss_kind:
            continue
        arg = loss_input(call)
        if arg is not None:
            yield flow, call, arg, flow.activation(arg.value)

def same_value(flow: Dataflow, name: str, first: cst.CSTNode, second: cst.CSTNode) -> bool:
    """``name`` is not rebound between ``first`` and ``second`` (same scope, ``first`` before ``second``)."""
    scope = flow.scope(first)
    if flow.scope(second) is not scope:
        return False
    first_chain = {id(n) for n in flow._chain(first)}
    for binding in flow._bindings_by_scope(name).get(id(scope), ()):
        node = binding.node
        if flow.precedes(node, second) and not (id(node) in first_chain or flow.precedes(node, first)):
            return False
    if "." not in name:
        for ancestor in flow.model.ancestors(second):
            if ancestor is scope or id(ancestor) in first_chain:
                break
            if isinstance(ancestor, cst.For) and name in _target_names(ancestor.target):
                return False
    return True


def uses_of(flow: Dataflow, name: str, scope: cst.CSTNode) -> list[cst.Name]:
    """Every ``Name`` node reading or writing ``name`` inside ``scope``."""
    return flow.names_in(scope).get(name, [])


def _shape_receiver(value: cst.BaseExpression) -> str | None:
    """``x`` for ``x.shape`` / ``x.size()``."""
    if isinstance(value, cst.Attribute) and value.attr.value == "shape":
        return dotted_name(value.value)
    if isinstance(value, cst.Call) and not value.args and isinstance(value.func, cst.Attribute) \
            and value.func.attr.value == "size":
        return dotted_name(value.func.value)
    return None


def _target_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for element in target.elements:
            out |= _target_names(element.value)
        return out
    return set()


def _function_nodes(function: cst.FunctionDef) -> Iterator[cst.CSTNode]:
    """The nodes of a function body, not descending into nested functions, classes or lambdas."""
    stack = list(iter_children(function.body))
    stack.reverse()
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, (cst.FunctionDef, cst.ClassDef, cst.Lambda)):
            continue
        children = list(iter_children(node))
        children.reverse()
        stack.extend(children)


def _first_arg(call: cst.Call, keyword: str) -> cst.BaseExpression | None:
    for arg in call.args:
        if arg.keyword is None and not arg.star:
            return arg.value
        if arg.keyword is not None and arg.keyword.value == keyword:
            return arg.value
    return None


__all__ = [
    "Activation", "Dataflow", "ForTarget", "LOGITS", "LOG_SOFTMAX", "ModuleRef", "SIGMOID", "SOFTMAX",
    "dataflow", "name_tokens", "walk",
]


def unwrap_activation_fix(flow: Dataflow, arg: cst.Arg, act: Activation, description: str):
    """A fix replacing the loss input by the activation's own input (dropping the softmax / sigmoid), when
    that is exact: the call is the argument itself, or a name bound to it whose input name was not rebound
    in between."""
    from .rule import SAFE, NodeEdit, NodeFix

    if act.call is None or act.source is None or act.model is not flow.model:
        return None
    if act.call is arg.value:
        return NodeFix(description, (NodeEdit("replace", arg.value, flow.model.code_for(act.source)),), SAFE)
    source_name = act.source.value if isinstance(act.source, cst.Name) else None
    if source_name is None or not isinstance(arg.value, cst.Name) or source_name == arg.value.value:
        return None  # `y_hat = softmax(y_hat)`: the logits' name now holds the probabilities
    if not same_value(flow, source_name, act.call, arg.value):
        return None
    return NodeFix(description, (NodeEdit("replace", arg.value, source_name),), SAFE)


TRAIN_ROLE = "train"
EVAL_ROLE = "eval"
_TRAIN_TOKENS = frozenset({"train", "training", "trn", "tr"})
EVAL_TOKENS = _EVAL_TOKENS = frozenset({"val", "valid", "validation", "validate", "test", "testing", "eval", "evaluation", "dev",
                          "holdout", "calib", "calibration", "infer", "inference", "predict", "pred", "prediction"})


def name_role(name: str | None) -> str | None:
    """TRAIN_ROLE / EVAL_ROLE from a name (``train_loader``, ``valset``, ``'validation'``), else None. Test-time
    augmentation (``tta``) and names mixing both roles say nothing."""
    if not name:
        return None
    tokens = set(name_tokens(name.rsplit(".", 1)[-1] if "/" not in name else name.rstrip("/").rsplit("/", 1)[-1]))
    if "tta" in tokens:
        return None
    train, evaluation = bool(tokens & _TRAIN_TOKENS), bool(tokens & _EVAL_TOKENS)
    if train == evaluation:
        return None
    return TRAIN_ROLE if train else EVAL_ROLE
