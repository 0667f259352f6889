"""Abstract values: what an expression holds, as a small lattice of PyTorch kinds.

::

    unknown (None)                      nothing is known: a rule asking about it stays silent
      └── Value(kind)                   MODEL, OPTIMIZER, SCHEDULER, DATALOADER, DATASET, TRANSFORM, LOSS, TENSOR,
            │                           ENCODING, DEVICE, TUPLE, MAPPING
            └── Value(kind, facets)     what built it and what each kind carries (see :class:`Value`)

:meth:`Values.of` finds every definition of an expression with the dataflow (:mod:`.dataflow`: bindings,
``if`` / ``elif`` / ``else`` joins, parameters, what helpers and methods return, attributes of the class and of
its parents, also in sibling modules) and joins their values: definitions of different kinds join to unknown;
of one kind, the facets they agree on are kept and the others become unknown.

Values flow through assignment, tuple / list unpacking (``model, optimizer = build()``), conditional expressions,
subscripts of literal tuples / lists / dicts (``losses["ce"]``), chained calls that return their receiver
(``model.to(device).train()``), and the standard wrappers: ``nn.DataParallel`` / DDP / ``torch.compile``,
``accelerator.prepare`` / ``fabric.setup``, ``Variable``, ``tqdm`` / ``iter`` of a loader. Everything is built on
the one parse of each file (no libcst metadata).
"""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from .activation_flow import MAX_DEPTH, returned_values
from .data_values import DataValues
from .dataflow import Dataflow, dataflow
from .model import Binding, ProgramModel
from .syntax import call_arg, dotted_name, int_literal, string_literal
from .torch_api import (
    AUGMENTATION_LIBRARIES,
    DATALOADER,
    DATALOADER_NAMES,
    DATAFLOW_MODULE_MOVES,
    DATAFLOW_MODULE_WRAPPERS,
    LOADER_WRAPPERS,
    MODEL,
    OPTIMIZER,
    TENSOR_MOVES,
    TRANSFORM_PIPELINES,
    TRANSPOSING_METHODS,
    VALUE_PASSING_WRAPPERS,
    kind_of_constructor,
)
from .value_lattice import (
    DEVICE,
    ENCODING,
    MAPPING,
    TENSOR,
    TRANSPOSED,
    TUPLE,
    Value,
    constructed,
    join,
)


def values(program: ProgramModel) -> "Values":
    """The program's abstract values, built once per program."""
    return program.cached(Values)


class Values(DataValues):
    """What expressions of one module hold (:meth:`of`), memoised per node."""

    def __init__(self, program: ProgramModel) -> None:
        self.program = program
        self.flow: Dataflow = dataflow(program)
        self._memo: dict[int, Value | None] = {}

    def kind(self, expr: cst.BaseExpression | None) -> str | None:
        """The kind of what ``expr`` holds, else None."""
        value = self.of(expr)
        return value.kind if value is not None else None

    def of(self, expr: cst.BaseExpression | None, depth: int = 0) -> Value | None:
        """The value ``expr`` holds here, or None (unknown)."""
        if expr is None or depth > MAX_DEPTH:
            return None
        key = id(expr)
        if key in self._memo:
            return self._memo[key]
        self._memo[key] = None  # a cycle (`x = f(x)`) is unknown
        value = self._of(expr, depth)
        self._memo[key] = value
        return value

    def _of(self, expr: cst.BaseExpression, depth: int) -> Value | None:
        if isinstance(expr, cst.IfExp):
            return join(self.of(expr.body, depth + 1), self.of(expr.orelse, depth + 1))
        if isinstance(expr, cst.Subscript):
            return self._subscript(expr, depth)
        if isinstance(expr, cst.Attribute) and expr.attr.value in ("T", "mT"):
            return _transposed(self.of(expr.value, depth + 1))
        if isinstance(expr, cst.Name):
            binding = self.flow.reaching(expr.value, expr)
            if isinstance(binding, Binding) and binding.value is None:
                unpacked = self._unpacked(expr.value, binding, depth)
                if unpacked is not None:
                    return unpacked
                # `logits, aux = model(x)`: the activation flow knows the elements of a forward's tuple returns
                activation = self.flow.activation(expr, depth + 1)
                return Value(TENSOR, activation=activation.kind) if activation is not None else None
        if dotted_name(expr) is None and not isinstance(expr, cst.Call):
            return self._definition(expr, depth)
        defs = self.flow.definitions(expr, depth)  # a call: what the helper or method returns, or itself
        if defs is None and _self_attribute(expr):
            return self._attribute(expr, depth)
        if not defs:
            return None
        joined: Value | None = None
        for index, (flow, value) in enumerate(defs):
            if value is expr:
                one = self._definition(expr, depth)
            else:
                one = (self if flow is self.flow else values(flow.program)).of(value, depth + 1)
            joined = one if index == 0 else join(joined, one)
            if joined is None:
                return None
        return joined

    def iterated(self, expr: cst.BaseExpression | None) -> Value | None:
        """What a loop over ``expr`` iterates: ``enumerate(x)``, ``tqdm(x)``, ``iter(x)`` iterate ``x``; ``zip(a, b)``
        iterates a TUPLE of what ``a`` and ``b`` iterate (``for i, (x, y) in enumerate(tqdm(loader))``)."""
        if isinstance(expr, cst.Call) and expr.args and not any(a.star or a.keyword for a in expr.args):
            qual = self.program.call_name(expr)
            if qual == "zip":
                return Value(TUPLE, elements=tuple(self.iterated(a.value) for a in expr.args))
            if qual in LOADER_WRAPPERS:
                return self.iterated(expr.args[0].value)
        return self.of(expr)

    def bound(self, binding: Binding) -> Value | None:
        """What ``binding`` (of this module) binds: its value, or its element of an unpacked tuple."""
        if binding.value is not None:
            return self.of(binding.value)
        return self._unpacked(binding.target, binding, 0)

    # ---- definitions -----------------------------------------------------------------------------

    def _definition(self, expr: cst.BaseExpression, depth: int) -> Value | None:
        """The value of a definition the dataflow stopped at: a literal, a call, arithmetic on a tensor."""
        if isinstance(expr, (cst.Tuple, cst.List)):
            if any(isinstance(e, cst.StarredElement) for e in expr.elements):
                return None
            return Value(TUPLE, elements=tuple(self.of(e.value, depth + 1) for e in expr.elements))
        if isinstance(expr, cst.Dict):
            entries = []
            for element in expr.elements:
                key = string_literal(element.key) if isinstance(element, cst.DictElement) else None
                if key is None:
                    return None
                entries.append((key, self.of(element.value, depth + 1)))
            return Value(MAPPING, entries=tuple(entries))
        if isinstance(expr, cst.Call):
            return self._call(expr, depth)
        if isinstance(expr, cst.BinaryOperation):
            sides = (self.of(expr.left, depth + 1), self.of(expr.right, depth + 1))
            if any(side is not None and side.kind == TENSOR for side in sides):
                return Value(TENSOR)  # arithmetic on a tensor: a tensor, with nothing known of what it holds
        return None

    def _call(self, call: cst.Call, depth: int) -> Value | None:
        program, func = self.program, call.func
        first = call.args[0].value if call.args and not call.args[0].star and call.args[0].keyword is None else None
        if isinstance(func, cst.Attribute):
            method = self._method(call, func, first, depth)
            if method is not False:
                return method
        qual = program.call_name(call)
        if qual in DATAFLOW_MODULE_WRAPPERS:
            wrapped = self.of(first, depth + 1)
            return wrapped if wrapped is not None and wrapped.kind == MODEL else None
        if qual in VALUE_PASSING_WRAPPERS:
            return self.of(first, depth + 1)
        kind = kind_of_constructor(qual)
        if kind == DATALOADER and qual in DATALOADER_NAMES:
            return self._loader(call, qual, depth)
        if kind == OPTIMIZER:
            return replace(constructed(kind, qual, call), params=self._parameters(call_arg(call, "params", 0), depth))
        if kind is not None and kind != MODEL:
            return constructed(kind, qual, call)
        if qual == "torch.device":
            return Value(DEVICE, qualname=qual)
        if qual in TRANSFORM_PIPELINES and qual != "torch.nn.Sequential" or qual and qual.startswith(AUGMENTATION_LIBRARIES):
            return self._transform(call, qual, depth)
        dataset = self._dataset(call, qual)
        if dataset is not None:
            return dataset
        if self._tokenizer(call.func, depth):
            return Value(ENCODING)
        ref = self.flow.module_of_value(call, depth + 1)
        if ref is not None:
            return Value(MODEL, qualname=ref.qualname or ref.classdef.name.value, module=ref)
        if kind == MODEL:
            return Value(MODEL, qualname=qual)
        output = self._forward(call, depth)
        return output if output is not None else self._tensor(call, depth)

    def _method(self, call: cst.Call, func: cst.Attribute, first, depth: int) -> Value | None | bool:
        """``receiver.method(...)`` that says what it returns; False when the method is not one of those."""
        method = func.attr.value
        if method in ("prepare", "setup", "setup_dataloaders"):  # what built the receiver: only asked here
            receiver_qual = self._constructor_of(func.value, depth)
            if method == "prepare" and receiver_qual in ("accelerate.Accelerator", "accelerate.accelerator.Accelerator"):
                return self._arguments(call, depth)
            if method != "prepare" and receiver_qual in ("lightning.Fabric", "lightning.fabric.Fabric",
                                                         "lightning_fabric.Fabric"):
                return self._arguments(call, depth)
        if method in DATAFLOW_MODULE_MOVES or method in TENSOR_MOVES:
            receiver = self.of(func.value, depth + 1)
            if receiver is None:
                return None
            if receiver.kind == MODEL and method in DATAFLOW_MODULE_MOVES or receiver.kind == ENCODING and method == "to":
                return receiver  # a module, a BatchEncoding: moved in place, and returned
            if receiver.kind == TENSOR and method in TENSOR_MOVES:
                return replace(receiver, layout=None if method == "contiguous" else receiver.layout,
                               detached=True if method == "detach" else receiver.detached)
            return None
        if method in TRANSPOSING_METHODS:
            return _transposed(self.of(func.value, depth + 1) or Value(TENSOR))
        return False

    def _arguments(self, call: cst.Call, depth: int) -> Value | None:
        """``accelerator.prepare(model, optimizer, loader)``: the arguments, prepared (one, or a tuple)."""
        if any(a.star or a.keyword is not None for a in call.args) or not call.args:
            return None
        prepared = tuple(self.of(a.value, depth + 1) for a in call.args)
        return prepared[0] if len(prepared) == 1 else Value(TUPLE, elements=prepared)

    def _constructor_of(self, expr: cst.BaseExpression, depth: int) -> str | None:
        """The qualified name of the call that built the object ``expr`` names (``Accelerator(...)``), else None."""
        if dotted_name(expr) is None:
            return None
        defs = self.flow.definitions(expr, depth + 1)
        if not defs or len(defs) != 1 or not isinstance(defs[0][1], cst.Call):
            return None
        flow, value = defs[0]
        return flow.program.call_name(value)

    def _forward(self, call: cst.Call, depth: int) -> Value | None:
        """``model(x)`` of a module class we can read: what its ``forward`` returns (a tensor, a tuple such as
        ``(logits, aux)``, a dict of outputs), the join of its ``return`` statements."""
        if dotted_name(call.func) is None or isinstance(call.func, cst.Name) and call.func.value in self.program.functions:
            return None
        callee = self.of(call.func, depth + 1)
        ref = callee.module if callee is not None and callee.kind == MODEL else None
        if ref is None or ref.classdef is None:
            return None
        return values(ref.program).output(ref.classdef, depth + 1)

    def output(self, classdef: cst.ClassDef, depth: int = 0) -> Value | None:
        """The join of what the ``forward`` of ``classdef`` (a module class of this file) returns."""
        info = self.program.functions.get(f"{classdef.name.value}.forward")
        if info is None or info.decorators or depth > MAX_DEPTH:
            return None
        joined: Value | None = None
        for index, value in enumerate(returned_values(info.node) or ()):
            one = self.of(value, depth + 1)
            joined = one if index == 0 else join(joined, one)
            if joined is None:
                return None
        return joined

    def _tensor(self, call: cst.Call, depth: int) -> Value | None:
        """A tensor whose activation the dataflow knows (``F.softmax(x)``, a model's output)."""
        activation = self.flow.activation(call, depth + 1)
        return Value(TENSOR, activation=activation.kind) if activation is not None else None

    def _parameters(self, expr: cst.BaseExpression | None, depth: int) -> tuple[Value, ...] | None:
        """The modules whose parameters ``expr`` holds: ``net.parameters()``, ``filter(f, net.parameters())``,
        ``list(...)``, ``itertools.chain(a.parameters(), b.parameters())``, ``[{"params": ...}, ...]``."""
        if isinstance(expr, (cst.List, cst.Tuple)):
            out: list[Value] = []
            for element in expr.elements:
                value = element.value
                if isinstance(element, cst.StarredElement):
                    return None
                if isinstance(value, cst.Dict):
                    value = next((e.value for e in value.elements if isinstance(e, cst.DictElement)
                                  and string_literal(e.key) == "params"), None)
                found = self._parameters(value, depth)
                if found is None:
                    return None
                out.extend(found)
            return tuple(out) or None
        if not isinstance(expr, cst.Call):
            return None
        func, qual = expr.func, self.program.call_name(expr)
        if isinstance(func, cst.Attribute) and func.attr.value in ("parameters", "named_parameters") and not expr.args:
            owner = self.of(func.value, depth + 1)
            return (owner,) if owner is not None and owner.kind == MODEL else None
        if qual in ("filter", "list", "tuple") and expr.args:
            return self._parameters(expr.args[-1].value, depth)
        if qual in ("itertools.chain",) and expr.args and not any(a.star or a.keyword for a in expr.args):
            parts = [self._parameters(a.value, depth) for a in expr.args]
            return None if any(p is None for p in parts) else tuple(v for p in parts for v in p)
        return None

    # ---- names the dataflow does not follow ------------------------------------------------------

    def _subscript(self, expr: cst.Subscript, depth: int) -> Value | None:
        """``pair[0]`` of a TUPLE, ``losses["ce"]`` of a MAPPING."""
        if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
            return None
        container = self.of(expr.value, depth + 1)
        index = expr.slice[0].slice.value
        if container is None:
            return None
        key = string_literal(index)
        if key is not None:
            return container.entry(key)
        number = int_literal(index)
        return container.element(number) if number is not None else None

    def _unpacked(self, name: str, binding: Binding, depth: int) -> Value | None:
        """``model, optimizer = build()``: the element of the TUPLE the right-hand side holds."""
        node = binding.node
        if not isinstance(node, cst.Assign) or len(node.targets) != 1:
            return None
        target = node.targets[0].target
        if not isinstance(target, (cst.Tuple, cst.List)) or any(isinstance(e, cst.StarredElement) for e in target.elements):
            return None
        index = next((i for i, e in enumerate(target.elements) if dotted_name(e.value) == name), None)
        whole = self.of(node.value, depth + 1)
        if index is None or whole is None or whole.elements is None or len(whole.elements) != len(target.elements):
            return None
        return whole.element(index)

    def _attribute(self, expr: cst.BaseExpression, depth: int) -> Value | None:
        """``self.criterion`` the dataflow cannot follow: set by unpacking (``self.model, self.opt = build()``)
        in the class's methods, or set only in a parent class's methods (here or in a sibling module)."""
        name = dotted_name(expr)
        class_name = self.flow.class_of(self.flow.scope(expr))
        classdef = self.program.classes.get(class_name) if class_name else None
        if classdef is None:
            return None
        own = self._class_bindings(self.program, class_name, name)
        if own:
            return self._bindings(own, depth)
        found = [(owner, bindings) for owner, parent in self._parents(classdef)
                 if (bindings := self._class_bindings(owner, parent, name))]
        if len(found) != 1:
            return None  # set by no parent we can see, or by two of them
        owner, bindings = found[0]
        return (self if owner is self.program else values(owner))._bindings(bindings, depth)

    @staticmethod
    def _class_bindings(owner: ProgramModel, class_name: str, name: str) -> list[Binding]:
        flow = dataflow(owner)
        return [b for b in owner.bindings.get(name, ()) if flow.class_of(flow.scope(b.node)) == class_name]

    def _bindings(self, bindings: list[Binding], depth: int) -> Value | None:
        """The join of what ``bindings`` (of this module) bind."""
        joined = None
        for index, b in enumerate(bindings):
            one = self.of(b.value, depth + 1) if b.value is not None else self._unpacked(b.target, b, depth)
            joined = one if index == 0 else join(joined, one)
            if joined is None:
                return None
        return joined

    def _parents(self, classdef: cst.ClassDef) -> list[tuple[ProgramModel, str]]:
        """The direct parent classes of ``classdef`` we can see: in this module, or imported from a sibling."""
        out = []
        for base in classdef.bases:
            name = dotted_name(base.value)
            if name is None or "." in name:
                continue
            if name in self.program.classes:
                out.append((self.program, name))
            elif name in self.program.imports and self.program.project is not None:
                try:
                    resolved = self.program.project.resolve(self.program, name)
                except Exception:  # a broken sibling never breaks this file
                    resolved = None
                if resolved is not None and resolved[1] in resolved[0].classes:
                    out.append(resolved)
        return out


def _self_attribute(expr: cst.BaseExpression) -> bool:
    """``self.x`` (one level)."""
    name = dotted_name(expr)
    return name is not None and name.startswith("self.") and name.count(".") == 1


def _transposed(value: Value | None) -> Value | None:
    """What ``value.transpose(...)`` / ``.permute(...)`` / ``.T`` is: a tensor with its dims reordered."""
    if value is None or value.kind != TENSOR:
        return None
    return replace(value, layout=TRANSPOSED)
