"""The program model: what the rules ask about a module, built in one pass over one parse.

It does not use libcst's scope or qualified-name metadata (too slow for every file); it resolves the
few names the rules need — import aliases, names bound to optimizers / schedulers / models / losses /
DataLoaders, functions and classes — in a single traversal of the tree's dataclass fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable, Hashable, Iterator, TypeVar

import libcst as cst

from .syntax import dotted_name, iter_children
from .torch_api import (
    MODEL,
    MODULE_RETURNING_METHODS,
    MODULE_WRAPPERS,
    NN_MODULE_BASES,
    kind_of_constructor,
)

if TYPE_CHECKING:
    from .project import Project

T = TypeVar("T")


@dataclass
class Binding:
    """``target = value`` (or ``with value as target``) somewhere in the module; loop targets are not bindings."""

    target: str  # dotted: "opt", "self.optimizer"
    value: cst.BaseExpression | None
    node: cst.CSTNode
    kind: str | None = None


@dataclass
class FunctionInfo:
    node: cst.FunctionDef
    qualname: str  # "train" or "Trainer.train_epoch"
    class_name: str | None
    decorators: tuple[str, ...]


@dataclass
class _StatementIndex:
    """What one top-level statement contributes to the program model. It depends on nothing outside the
    statement, so an edit elsewhere leaves it valid (see :meth:`ProgramModel.build`'s ``reuse``)."""

    node: cst.CSTNode
    calls: list[cst.Call] = field(default_factory=list)
    loops: list[cst.For | cst.While] = field(default_factory=list)
    names: list[tuple[str, str, str]] = field(default_factory=list)  # import / alias events, in order
    bindings: list[Binding] = field(default_factory=list)  # their kinds are set by the program built on them
    classes: list[cst.ClassDef] = field(default_factory=list)
    functions: list[FunctionInfo] = field(default_factory=list)
    parents: dict[int, cst.CSTNode] = field(default_factory=dict)
    attributes: set[str] = field(default_factory=set)  # the names after a dot (`x.requires_grad`: "requires_grad")
    memo: dict[Callable, object] = field(default_factory=dict)  # see ProgramModel.per_statement


# Events in _StatementIndex.names: ``import a.b`` binds ``a`` unless already bound ("setdefault"),
# ``from m import x as y`` rebinds ``y`` ("set"), ``F = torch.nn.functional`` may alias a module ("alias").
_SET, _SETDEFAULT, _ALIAS = "set", "setdefault", "alias"


def _index_statement(statement: cst.CSTNode) -> _StatementIndex:
    """One walk over a top-level statement (pre-order, as the module's code reads)."""
    index = _StatementIndex(statement)
    parents, calls, loops = index.parents, index.calls, index.loops
    stack: list[tuple[cst.CSTNode, str | None]] = [(statement, None)]
    while stack:
        node, class_name = stack.pop()
        kind = type(node)
        if kind is cst.Call:
            calls.append(node)
        elif kind is cst.For or kind is cst.While:
            loops.append(node)
        elif kind is cst.Import or kind is cst.ImportFrom:
            _import_events(node, index.names)
        elif kind is cst.Assign:
            for target in node.targets:
                _bindings_for(target.target, node.value, node, index)
        elif kind is cst.AnnAssign:
            if node.value is not None:
                _bindings_for(node.target, node.value, node, index)
        elif kind is cst.WithItem:
            if node.asname is not None:
                _bindings_for(node.asname.name, node.item, node, index)
        elif kind is cst.Attribute:
            index.attributes.add(node.attr.value)
        elif kind is cst.ClassDef:
            index.classes.append(node)
        elif kind is cst.FunctionDef:
            qual = f"{class_name}.{node.name.value}" if class_name else node.name.value
            index.functions.append(FunctionInfo(
                node=node,
                qualname=qual,
                class_name=class_name,
                decorators=tuple(filter(None, (dotted_name(_decorator_callee(d.decorator)) for d in node.decorators))),
            ))
        # A class names the functions inside it; methods of nested helpers still belong to the class.
        child_class = node.name.value if kind is cst.ClassDef else class_name
        children = list(iter_children(node))
        for child in children:
            parents[id(child)] = node
        for child in reversed(children):
            stack.append((child, child_class))
    return index


def _import_events(node: cst.Import | cst.ImportFrom, events: list[tuple[str, str, str]]) -> None:
    if isinstance(node, cst.Import):
        for alias in node.names:
            full = dotted_name(alias.name)
            if full is None:
                continue
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                events.append((_SET, alias.asname.name.value, full))
            else:
                head = full.split(".")[0]
                events.append((_SETDEFAULT, head, head))
        return
    if node.relative:
        base = "." * len(node.relative) + (dotted_name(node.module) or "")
    else:
        base = dotted_name(node.module) or ""
    if isinstance(node.names, cst.ImportStar):
        return
    for alias in node.names:
        name = dotted_name(alias.name)
        if name is None:
            continue
        local = alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else name
        events.append((_SET, local, f"{base}.{name}" if base else name))


def _bindings_for(target: cst.BaseExpression, value: cst.BaseExpression | None, node: cst.CSTNode,
                  index: _StatementIndex) -> None:
    name = dotted_name(target)
    if name is not None:
        value_name = dotted_name(value) if value is not None else None
        if "." not in name and value_name is not None:
            index.names.append((_ALIAS, name, value_name))  # `F = torch.nn.functional`: maybe a module alias
        index.bindings.append(Binding(target=name, value=value, node=node))
        return
    if isinstance(target, (cst.Tuple, cst.List)):
        values = value.elements if isinstance(value, (cst.Tuple, cst.List)) else None
        for i, element in enumerate(target.elements):
            element_value = values[i].value if values is not None and i < len(values) else None
            if element_value is not None:
                _bindings_for(element.value, element_value, node, index)
            else:
                index.bindings.extend(Binding(target=n, value=None, node=node) for n in filter(None, [dotted_name(element.value)]))


# The key of a per-statement result that depends on its statement's code alone (:meth:`ProgramModel.per_statement_of`).
STATEMENT_ONLY = object()


@dataclass
class ProgramModel:
    """Everything the rules query about one module. Build with :meth:`ProgramModel.build`."""

    module: cst.Module
    path: str
    imports: dict[str, str] = field(default_factory=dict)
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    functions: dict[str, FunctionInfo] = field(default_factory=dict)
    classes: dict[str, cst.ClassDef] = field(default_factory=dict)
    module_classes: set[str] = field(default_factory=set)  # classes here that subclass nn.Module
    calls: list[cst.Call] = field(default_factory=list)
    loops: list[cst.For | cst.While] = field(default_factory=list)
    parents: dict[int, cst.CSTNode] = field(default_factory=dict)
    _name_kinds: dict[str, str | None] = field(default_factory=dict, repr=False)
    _call_names: dict[int, str | None] = field(default_factory=dict, repr=False)
    _statements: dict[int, _StatementIndex] = field(default_factory=dict, repr=False)
    _memo: dict[Callable, object] = field(default_factory=dict, repr=False)
    _handed: dict[Callable, object] = field(default_factory=dict, repr=False)  # see handed_on
    _facts: tuple | None = field(default=None, repr=False)  # see facts
    _previous_facts: tuple | None = field(default=None, repr=False)
    project: "Project | None" = None

    # ---- construction -------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        module: cst.Module,
        path: str = "<string>",
        project: "Project | None" = None,
        reuse: "ProgramModel | None" = None,
    ) -> "ProgramModel":
        """The program model of ``module``. ``reuse``: the program model of an earlier version of the same text, whose
        top-level statements that are the very same nodes here are not walked again."""
        program = cls(module=module, path=path, project=project)
        program._index(reuse._statements if reuse is not None else {})
        if reuse is not None:
            program._previous_facts = reuse._facts if reuse._facts is not None else reuse._previous_facts
            program._handed = dict(reuse._handed)
            for compute, analysis in reuse._memo.items():
                hand_on = getattr(analysis, "hand_on", None)
                if hand_on is not None:
                    program._handed[compute] = hand_on()
        return program

    def _index(self, previous: dict[int, _StatementIndex]) -> None:
        pending: list[Binding] = []
        for statement in self.module.body:
            index = previous.get(id(statement))
            if index is None or index.node is not statement:
                index = _index_statement(statement)
            self._statements[id(statement)] = index
            self.parents.update(index.parents)
            self.parents[id(statement)] = self.module
            self.calls.extend(index.calls)
            self.loops.extend(index.loops)
            for event, name, value in index.names:
                if event == _SET:
                    self.imports[name] = value
                elif event == _SETDEFAULT:
                    self.imports.setdefault(name, value)
                else:
                    resolved = self._resolve_dotted(value)
                    if resolved.split(".")[0] in ("torch", "torchvision", "numpy", "random"):
                        self.imports.setdefault(name, resolved)
            pending.extend(index.bindings)
            for node in index.classes:
                self.classes[node.name.value] = node
            for info in index.functions:
                self.functions.setdefault(info.qualname, info)
        # Classes first, so that `model = Net()` knows Net is a module.
        for name, node in self.classes.items():
            for base in node.bases:
                base_name = self.qualname(base.value)
                if base_name in NN_MODULE_BASES or (base_name and base_name.split(".")[-1] in self.module_classes):
                    self.module_classes.add(name)
        for binding in pending:
            binding.kind = None  # a reused statement's bindings still hold the kinds of the last model
            self.bindings.setdefault(binding.target, []).append(binding)
        for binding in pending:
            binding.kind = self.kind_of(binding.value)

    def cached(self, compute: Callable[["ProgramModel"], T]) -> T:
        """``compute(self)``, computed once per program: the per-file analyses several rules share (the
        effects, the dataflow, indexes of calls and names) are keyed by the function that builds them."""
        memo = self._memo
        if compute not in memo:
            memo[compute] = compute(self)
        return memo[compute]

    def per_statement(self, compute: Callable[[cst.CSTNode], T]) -> list[T]:
        """``compute(statement)`` for every top-level statement, in order. A result depends on its statement
        alone, so it is kept with the statement's index: after an edit only the statements that changed are
        computed again (a rule's whole-file scan costs the edited statement, not the file)."""
        results = []
        for statement in self.module.body:
            memo = self._statements[id(statement)].memo
            if compute not in memo:
                memo[compute] = compute(statement)
            results.append(memo[compute])
        return results

    def per_statement_of(self, compute: Callable[["ProgramModel", cst.CSTNode], T], key: Hashable) -> list[T]:
        """``compute(self, statement)`` for every top-level statement, in order, for results that read module-level
        facts besides their statement: a result is kept with its statement while ``key`` (:meth:`facts`, the
        fingerprint of every fact ``compute`` reads outside the statement) is the very same object."""
        return [self.for_statement(compute, statement, key) for statement in self.module.body]

    def for_statement(self, compute: Callable[["ProgramModel", cst.CSTNode], T], statement: cst.CSTNode,
                      key: Hashable) -> T:
        """:meth:`per_statement_of` for one top-level statement."""
        memo = self._statements[id(statement)].memo
        kept = memo.get(compute)
        if kept is None or kept[0] is not key:
            kept = memo[compute] = (key, compute(self, statement))
        return kept[1]

    def statement_calls(self, statement: cst.CSTNode) -> list[cst.Call]:
        """The calls in a top-level statement, in ``calls`` order."""
        return self._statements[id(statement)].calls

    def statement_attributes(self, statement: cst.CSTNode) -> set[str]:
        """The attribute names used in a top-level statement (``x.requires_grad`` gives ``requires_grad``)."""
        return self._statements[id(statement)].attributes

    def top_statement(self, node: cst.CSTNode) -> cst.CSTNode | None:
        """The top-level statement that holds ``node`` (itself, if it is one); None for the module."""
        module = self.module
        current, parent = node, self.parents.get(id(node))
        while parent is not None and parent is not module:
            current, parent = parent, self.parents.get(id(parent))
        return current if parent is module else None

    def facts(self) -> tuple:
        """A fingerprint of the module-level facts that the analyses of one function read besides its own code:
        the imports, the classes with their bases, the nn.Module classes, the functions' names, and each binding's
        target, kind and callee, and whether the module is in a project. Equal facts of two versions of a text are
        the very same object (so a result keyed by them is checked with ``is``). What sibling files of a project
        say is not in it: an analysis that asks them keeps its answer to this version."""
        if self._facts is None:
            facts = (
                self.project is not None,
                tuple(self.imports.items()),
                tuple((name, tuple(dotted_name(b.value) for b in node.bases)) for name, node in self.classes.items()),
                tuple(sorted(self.module_classes)),
                tuple((qual, info.class_name) for qual, info in self.functions.items()),
                tuple((target, tuple((b.kind, self.call_name(b.value) if type(b.value) is cst.Call else None)
                                     for b in bindings)) for target, bindings in self.bindings.items()),
            )
            self._facts = self._previous_facts if facts == self._previous_facts else facts
        return self._facts

    def handed_on(self, compute: Callable) -> object | None:
        """What the analysis ``compute`` of the previous version of this text (:meth:`build`'s ``reuse``) handed on
        to this one: its ``hand_on()``, or None. The analysis checks it against this version before using it."""
        return self._handed.get(compute)

    # ---- queries --------------------------------------------------------------------------------

    def _resolve_dotted(self, name: str) -> str:
        head, _, rest = name.partition(".")
        base = self.imports.get(head)
        if base is None:
            return name
        return f"{base}.{rest}" if rest else base

    def qualname(self, expr: cst.BaseExpression | None) -> str | None:
        """The fully qualified name an expression refers to through the module's imports
        (``nn.CrossEntropyLoss`` → ``torch.nn.CrossEntropyLoss``), or None."""
        name = dotted_name(expr)
        if name is None:
            return None
        return self._resolve_dotted(name)

    def call_name(self, call: cst.Call) -> str | None:
        """The qualified name of the function a call calls (memoized per call)."""
        key = id(call)
        names = self._call_names
        if key not in names:
            names[key] = self.qualname(call.func)
        return names[key]

    def parent(self, node: cst.CSTNode) -> cst.CSTNode | None:
        return self.parents.get(id(node))

    def ancestors(self, node: cst.CSTNode) -> Iterator[cst.CSTNode]:
        current = self.parents.get(id(node))
        while current is not None:
            yield current
            current = self.parents.get(id(current))

    def enclosing_function(self, node: cst.CSTNode) -> cst.FunctionDef | None:
        for ancestor in self.ancestors(node):
            if isinstance(ancestor, cst.FunctionDef):
                return ancestor
        return None

    def enclosing_statement(self, node: cst.CSTNode) -> cst.CSTNode | None:
        """The simple or compound statement that holds ``node`` (itself, if it is one)."""
        current: cst.CSTNode | None = node
        while current is not None:
            if isinstance(current, (cst.SimpleStatementLine, cst.BaseCompoundStatement)):
                return current
            current = self.parents.get(id(current))
        return None

    def function_info(self, node: cst.FunctionDef) -> FunctionInfo | None:
        for info in self.functions.values():
            if info.node is node:
                return info
        return None

    def kind_of(self, expr: cst.BaseExpression | None) -> str | None:
        """What an expression holds: OPTIMIZER, SCHEDULER, MODEL, LOSS, DATALOADER or None."""
        while isinstance(expr, cst.Call):
            qual = self.call_name(expr)
            kind = kind_of_constructor(qual)
            if kind is not None:
                return kind
            if qual is not None and qual.split(".")[-1] in self.module_classes and "." not in qual:
                return MODEL
            # `model = Net().to(device)`, `model = torch.compile(model)`, `DDP(model)`.
            if isinstance(expr.func, cst.Attribute) and expr.func.attr.value in MODULE_RETURNING_METHODS:
                expr = expr.func.value
            elif qual in MODULE_WRAPPERS and expr.args:
                expr = expr.args[0].value
            else:
                return None
        name = dotted_name(expr)
        return self._kind_of_name(name) if name is not None else None

    def _kind_of_name(self, name: str) -> str | None:
        """The kind of the latest binding of ``name`` that has one. Memoized per name (the program model is
        flow-insensitive), with a guard against cycles such as ``x = x.to(device)``."""
        memo = self._name_kinds
        if name in memo:
            return memo[name]
        memo[name] = None  # in progress: a cycle through this name contributes nothing
        kind = None
        for binding in reversed(self.bindings.get(name, ())):
            kind = binding.kind if binding.kind is not None else self.kind_of(binding.value)
            if kind is not None:
                break
        memo[name] = kind
        return kind

    def names_of_kind(self, kind: str) -> set[str]:
        """Every dotted name bound to an object of ``kind``."""
        return {name for name, bs in self.bindings.items() if any(b.kind == kind for b in bs)}

    def code_for(self, node: cst.CSTNode) -> str:
        return self.module.code_for_node(node)


def _decorator_callee(expr: cst.BaseExpression) -> cst.BaseExpression:
    return expr.func if isinstance(expr, cst.Call) else expr
