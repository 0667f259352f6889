"""Light dataflow on top of the program model: what a name holds at a given use.

Built lazily, once per :class:`ProgramModel` (:func:`dataflow`), without libcst metadata. It answers:

- :meth:`Dataflow.reaching` — the binding of a name that reaches a use (same scope, last one before the
  use, and only when that binding is unconditional with respect to the use: a binding inside an ``if``,
  ``try`` or loop that does not also hold the use is "unknown");
- :meth:`Dataflow.branch_bindings` — the join of an ``if`` / ``elif`` / ``else`` that binds a name in every
  branch (the bindings that reach a use after it);
- :meth:`Dataflow.definitions` — the expressions a name may hold, following bindings (joined across the
  branches of an ``if``), function parameters (through the call sites of module-level functions),
  module-level names and what a helper / method of this module returns; all-or-nothing;
- :meth:`Dataflow.activation` (from :mod:`.activation_flow`) — whether a tensor expression is the output of
  ``softmax``, ``log_softmax``, ``sigmoid`` or of a layer producing raw logits, across files through
  ``program.project``;
- :meth:`Dataflow.module_of` — which module (torch.nn constructor call or nn.Module class) an expression is.

Everything answers ``None`` when it cannot tell: callers stay silent then.
"""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from .activation_flow import MAX_DEPTH, Activation, ActivationFlow, function_nodes, returned_values
from .lookups import calls_by_callee, enclosing_function
from .model import Binding, ProgramModel
from .name_guesses import name_role, name_tokens
from .syntax import dotted_name, iter_children, walk
from .torch_api import (
    DATAFLOW_MODULE_MOVES,
    DATAFLOW_MODULE_WRAPPERS,
    LAYER_ACTIVATIONS,
    LOG_SOFTMAX,
    LOGITS,
    SIGMOID,
    SOFTMAX,
)

_MAX_DEFINITIONS = 16

_CONDITIONAL = (cst.If, cst.Try, cst.For, cst.While, cst.Match) if hasattr(cst, "Match") else (
    cst.If, cst.Try, cst.For, cst.While)


@dataclass(frozen=True)
class ModuleRef:
    """A module object: a torch.nn constructor call (``qualname`` set) or a local nn.Module class."""

    program: ProgramModel
    call: cst.Call | None = None
    qualname: str | None = None
    classdef: cst.ClassDef | None = None


@dataclass(frozen=True)
class ForTarget:
    """A name bound as the target of a ``for`` loop."""

    loop: cst.For


def dataflow(program: ProgramModel) -> "Dataflow":
    """The program's dataflow, built once."""
    return program.cached(Dataflow)


class Dataflow(ActivationFlow):
    def __init__(self, program: ProgramModel) -> None:
        self.program = program
        self._params: dict[int, dict[str, cst.Param]] = {}
        self._last_layer: dict[int, str | None] = {}
        self._orders: dict[int, dict[int, int]] = {}
        self._names: dict[int, dict[str, list[cst.Name]]] = {}
        self._grouped: dict[str, dict[int, list[Binding]]] = {}
        self._definitions: dict[int, list | None] = {}
        self._function_classes: dict[int, str | None] | None = None
        self._parameter_names: frozenset[str] | None = None

    # ---- order and scope -------------------------------------------------------------------------

    def scope(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        return enclosing_function(self.program, node)

    def _chain(self, node: cst.CSTNode) -> list[cst.CSTNode]:
        chain = [node]
        chain.extend(self.program.ancestors(node))
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
        return calls_by_callee(self.program)[0].get(name, [])

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
        for ancestor in self.program.ancestors(binding_node):
            if ancestor is scope:
                return True
            if id(ancestor) in use_ids:
                if isinstance(ancestor, (cst.If, cst.Try)):
                    # both under the same if/try: only the same branch counts
                    for node in self._chain(use):
                        if self.program.parent(node) is ancestor:
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

    def parameter_names(self) -> frozenset[str]:
        """The names of every function's parameters in the module (computed once)."""
        if self._parameter_names is None:
            self._parameter_names = frozenset(name for info in self.program.functions.values()
                                              for name in self.params(info.node))
        return self._parameter_names

    def class_of(self, function: cst.FunctionDef | None) -> str | None:
        if function is None:
            return None
        if self._function_classes is None:
            self._function_classes = {id(info.node): info.class_name for info in self.program.functions.values()}
        return self._function_classes.get(id(function))

    # ---- bindings --------------------------------------------------------------------------------

    def reaching(self, name: str, use: cst.CSTNode) -> Binding | ForTarget | None:
        """The binding of ``name`` (in the use's scope) that reaches ``use``; None if there is none or if
        it is conditional."""
        scope = self.scope(use)
        in_scope = self._bindings_by_scope(name).get(id(scope), ())
        index = self._last_before(in_scope, use)
        last = in_scope[index] if index >= 0 else None
        if "." not in name:
            for ancestor in self.program.ancestors(use):
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

    def _last_before(self, in_scope, use: cst.CSTNode) -> int:
        """The index of the last binding of ``in_scope`` (one scope's, in source order) that starts before
        ``use`` and is not the statement holding it (`x = f(x)` reads the previous x); -1 when none."""
        if not in_scope:
            return -1
        use_ids = {id(n) for n in self._chain(use)}
        lo, hi = 0, len(in_scope)
        while lo < hi:
            mid = (lo + hi) // 2
            node = in_scope[mid].node
            if id(node) in use_ids or self.precedes(node, use):
                lo = mid + 1
            else:
                hi = mid
        index = lo - 1
        while index >= 0 and id(in_scope[index].node) in use_ids:
            index -= 1
        return index

    def _bindings_by_scope(self, name: str) -> dict[int, list[Binding]]:
        grouped = self._grouped.get(name)
        if grouped is None:
            grouped = {}
            for binding in self.program.bindings.get(name, ()):
                grouped.setdefault(id(self.scope(binding.node)), []).append(binding)
            self._grouped[name] = grouped
        return grouped

    def definitions(self, expr: cst.BaseExpression | None, depth: int = 0) -> list[tuple["Dataflow", cst.BaseExpression]] | None:
        """The expressions ``expr`` may evaluate to, through names; None when some cannot be known (or when
        there are too many to reason about). Memoised per node."""
        if expr is None or depth > MAX_DEPTH:
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
            returned = self._returned_definitions(expr, depth) if isinstance(expr, cst.Call) else None
            return returned if returned is not None else [(self, expr)]
        if name.startswith("self."):
            return self._attribute_definitions(name, self.scope(expr), depth)
        if "." in name and name not in self.program.bindings:
            return None  # `x.to`: an attribute nothing in the module assigns
        function = self.scope(expr)
        binding = self.reaching(name, expr)
        if binding is not None:
            if isinstance(binding, ForTarget) or binding.value is None:
                return None
            return self.definitions(binding.value, depth + 1)
        joined = self.branch_bindings(name, expr)
        if joined is not None:
            return self._all_definitions(joined, depth)
        if "." in name:
            return None
        if function is not None:
            if any(self.scope(b.node) is function for b in self.program.bindings.get(name, ())):
                return None  # bound locally, but not before this use (or conditionally)
            if name in self.params(function):
                return self._argument_definitions(function, name, depth)
        # A module-level name (used inside a function, or later at module level).
        globals_ = [b for b in self.program.bindings.get(name, ()) if self.scope(b.node) is None]
        if not globals_ or any(b.value is None for b in globals_):
            return None
        if function is None and not all(self.precedes(b.node, expr) for b in globals_):
            return None
        return self._all_definitions(globals_, depth)

    def _all_definitions(self, bindings: list[Binding], depth: int) -> list[tuple[Dataflow, cst.BaseExpression]] | None:
        out: list[tuple[Dataflow, cst.BaseExpression]] = []
        for b in bindings:
            sub = self.definitions(b.value, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return out

    def branch_bindings(self, name: str, use: cst.CSTNode) -> list[Binding] | None:
        """The bindings of ``name`` that reach ``use`` from the branches of one ``if`` / ``elif`` / ``else``
        that binds it in every branch (the join of the branches): one per branch, the last one at the
        branch's own level; a branch that ends in ``raise`` reaches nothing. None when the last binding before
        ``use`` is not in such a statement, or a branch leaves ``name`` unbound or binds it deeper down."""
        scope = self.scope(use)
        in_scope = self._bindings_by_scope(name).get(id(scope), ())
        index = self._last_before(in_scope, use)
        if index < 0:
            return None
        use_ids = {id(n) for n in self._chain(use)}
        statement = None
        for ancestor in self.program.ancestors(in_scope[index].node):
            if ancestor is scope or id(ancestor) in use_ids:
                break
            if isinstance(ancestor, _CONDITIONAL):
                statement = ancestor
        if not isinstance(statement, cst.If) or not self._same_branch(statement, use, scope) \
                or not self.precedes(statement, use):
            return None
        inside = []  # the bindings inside the statement: the ones just before the last, in source order
        while index >= 0 and any(a is statement for a in self.program.ancestors(in_scope[index].node)):
            inside.insert(0, in_scope[index])
            index -= 1
        out: list[Binding] = []
        for block in _branches(statement):
            if block is None:
                return None  # no `else`: the value from before the `if` may reach the use
            mine = [b for b in inside if any(a is block for a in self.program.ancestors(b.node))]
            if not mine:
                if _ends_in_raise(block):
                    continue
                return None
            last = mine[-1]
            line = self.program.parent(last.node)
            if last.value is None or not isinstance(last.node, (cst.Assign, cst.AnnAssign)) \
                    or not (line is block or self.program.parent(line) is block):
                return None
            out.append(last)
        return out or None

    def _returned_definitions(self, call: cst.Call, depth: int) -> list[tuple[Dataflow, cst.BaseExpression]] | None:
        """``helper(...)`` / ``self.method(...)`` / ``net.method(...)`` of this module: what every ``return`` of it
        gives (a method of the class the call is written in, or of the module class ``net`` is built from; no
        decorators, no generators); None when unknown."""
        func = call.func
        if isinstance(func, cst.Attribute) and dotted_name(func.value) is not None:
            if dotted_name(func.value) == "self":
                class_name = self.class_of(self.scope(call))
            else:  # `head.probabilities(x)`: a method of the module class of this file the receiver is
                refs = self.module_of(func.value, depth + 1)
                ref = refs[0] if refs and len(refs) == 1 else None
                class_name = ref.classdef.name.value if ref is not None and ref.classdef is not None \
                    and ref.program is self.program else None
            info = self.program.functions.get(f"{class_name}.{func.attr.value}") if class_name else None
            function = info.node if info is not None and not info.decorators else None
        else:
            function = self._helper(func)
        returns = returned_values(function) if function is not None else None
        if returns is None:
            return None
        out: list[tuple[Dataflow, cst.BaseExpression]] = []
        for value in returns:
            sub = self.definitions(value, depth + 1)
            if sub is None:
                return None
            out.extend(sub)
        return out

    def _attribute_definitions(self, name: str, function: cst.FunctionDef | None, depth: int):
        """``self.fc``: every assignment to it in the methods of the same class."""
        class_name = self.class_of(function)
        if class_name is None:
            return None
        found = [b for b in self.program.bindings.get(name, ())
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
        if self.class_of(function) is not None or self.program.parent(function) is not None and not isinstance(
            self.program.parent(function), cst.Module
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
                arg_value = self.params(function)[name].default  # left out: the default, if there is one
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
            ref = flow.module_of_value(value, depth + 1)
            if ref is None:
                return None
            out.append(ref)
        return out

    def module_of_value(self, value: cst.BaseExpression, depth: int) -> ModuleRef | None:
        """Which module the value ``value`` (a constructor call, a wrapper or ``.to(...)`` of one) is, else None."""
        if depth > MAX_DEPTH or not isinstance(value, cst.Call):
            return None
        program = self.program
        func = value.func
        if isinstance(func, cst.Attribute) and func.attr.value in DATAFLOW_MODULE_MOVES and dotted_name(func) is not None \
                and program.qualname(func) == dotted_name(func):
            # `Net().to(device)` / `model.cuda()`: the receiver is the module.
            refs = self.module_of(func.value, depth + 1)
            return refs[0] if refs and len(refs) == 1 else None
        if isinstance(func, cst.Attribute) and func.attr.value in DATAFLOW_MODULE_MOVES and isinstance(func.value, cst.Call):
            return self.module_of_value(func.value, depth + 1)
        qual = program.call_name(value)
        if qual is None:
            return None
        if qual in DATAFLOW_MODULE_WRAPPERS and value.args:
            refs = self.module_of(value.args[0].value, depth + 1)
            return refs[0] if refs and len(refs) == 1 else None
        if qual.startswith("torch.nn.") and qual.rsplit(".", 1)[-1][:1].isupper():
            return ModuleRef(program, call=value, qualname=qual)
        if "." not in qual and qual in program.classes:
            if qual in program.module_classes:
                return ModuleRef(program, call=value, classdef=program.classes[qual])
            return None
        if isinstance(func, cst.Name) and program.project is not None and func.value in program.imports:
            try:
                resolved = program.project.resolve(program, func.value)
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
        if depth > MAX_DEPTH:
            return None
        if ref.program is not self.program:
            return dataflow(ref.program).last_layer(ref, depth)
        if ref.qualname is not None:
            if ref.qualname in LAYER_ACTIVATIONS:
                return LAYER_ACTIVATIONS[ref.qualname]
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
        info = self.program.functions.get(f"{classdef.name.value}.forward")
        if info is None:
            return None
        kinds = set()
        for node in function_nodes(info.node):
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
        for ancestor in flow.program.ancestors(second):
            if ancestor is scope or id(ancestor) in first_chain:
                break
            if isinstance(ancestor, cst.For) and name in _target_names(ancestor.target):
                return False
    return True


def uses_of(flow: Dataflow, name: str, scope: cst.CSTNode) -> list[cst.Name]:
    """Every ``Name`` node reading or writing ``name`` inside ``scope``."""
    return flow.names_in(scope).get(name, [])


def _branches(statement: cst.If) -> list[cst.BaseSuite | None]:
    """The blocks of an ``if`` / ``elif`` / ``else`` chain, in order; None last when it has no ``else``."""
    blocks: list[cst.BaseSuite | None] = []
    node: cst.If | cst.Else | None = statement
    while isinstance(node, cst.If):
        blocks.append(node.body)
        node = node.orelse
    blocks.append(node.body if isinstance(node, cst.Else) else None)
    return blocks


def _ends_in_raise(block: cst.BaseSuite) -> bool:
    """The block's last statement is ``raise ...``: nothing after the branch runs."""
    if isinstance(block, cst.SimpleStatementSuite):
        return isinstance(block.body[-1], cst.Raise)
    last = block.body[-1] if block.body else None
    return isinstance(last, cst.SimpleStatementLine) and isinstance(last.body[-1], cst.Raise)


def _target_names(target: cst.BaseExpression) -> set[str]:
    if isinstance(target, cst.Name):
        return {target.value}
    if isinstance(target, (cst.Tuple, cst.List)):
        out: set[str] = set()
        for element in target.elements:
            out |= _target_names(element.value)
        return out
    return set()


__all__ = [
    "Activation", "Dataflow", "ForTarget", "LOGITS", "LOG_SOFTMAX", "ModuleRef", "SIGMOID", "SOFTMAX",
    "dataflow", "name_role", "name_tokens", "walk",
]


