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

from dataclasses import dataclass, field, replace

import libcst as cst

from .activation_flow import MAX_DEPTH
from .dataflow import Dataflow, ModuleRef, dataflow
from .model import Binding, ProgramModel
from .name_guesses import EVAL_ROLE, TRAIN_ROLE, name_role
from .syntax import call_arg, dotted_name, int_literal, number_literal, string_literal
from .torch_api import (
    AUGMENTATION_LIBRARIES,
    DATASET,
    DATASET_NAMES,
    DATASET_PREFIXES,
    ITERABLE_DATASETS,
    TRANSFORM_PIPELINES,
    DATALOADER,
    DATALOADER_NAMES,
    DATAFLOW_MODULE_MOVES,
    DATAFLOW_MODULE_WRAPPERS,
    EPOCH_SCHEDULERS,
    FIXED_WHEN_ALWAYS,
    RANDOM_AUGMENTATIONS,
    MODEL,
    OPTIMIZER,
    SCHEDULER,
    STEP_SCHEDULERS,
    TENSOR_MOVES,
    TRANSPOSING_METHODS,
    VALUE_PASSING_WRAPPERS,
    kind_of_constructor,
)

TENSOR = "tensor"
TRANSFORM = "transform"  # a torchvision transform pipeline
ENCODING = "encoding"  # a tokenizer's BatchEncoding (a dict of tensors that moves in place)
DEVICE = "device"
TUPLE = "tuple"
MAPPING = "mapping"

EPOCH = "epoch"  # a scheduler whose horizon is usually counted in epochs
STEP = "step"  # a scheduler built to be stepped every batch (OneCycleLR, warmup schedules)
TRANSPOSED = "transposed"  # a tensor whose memory order is not its dimension order (transpose / permute / .T)


@dataclass(frozen=True, eq=False)
class Value:
    """One abstract value. Facets not known (or not relevant to the kind) are None.

    - ``qualname``: what built it (``torch.optim.AdamW``, ``torch.nn.CrossEntropyLoss``, a module class's name);
    - MODEL: ``module``, the module (its ``torch.nn`` constructor or its class, maybe in another file);
    - OPTIMIZER: ``params``, the values of the modules whose ``.parameters()`` it holds (None when it holds
      anything else, or parameters it is not plain whose);
    - SCHEDULER: ``schedule``, EPOCH for schedulers whose horizon is usually counted in epochs, STEP for the ones
      built to be stepped every batch;
    - DATALOADER: ``shuffle`` (the literal ``shuffle=``; False when left out), ``sampler`` (a ``sampler=`` /
      ``batch_sampler=`` decides the order) and ``split`` (its dataset's);
    - DATASET: ``split`` (TRAIN_ROLE / EVAL_ROLE from ``train=True`` / ``split="val"``), ``iterable`` (an
      ``IterableDataset``, or a streamed ``load_dataset``);
    - TRANSFORM: ``random`` (a random augmentation among its steps: crops, flips, colour jitter, ...);
    - TENSOR: ``activation`` (SOFTMAX / LOG_SOFTMAX / SIGMOID / LOGITS, from :mod:`.activation_flow`),
      ``layout`` (TRANSPOSED), ``detached``;
    - TUPLE: ``elements``; MAPPING: ``entries`` (string keys);
    - ``origin``: the constructor call that built an optimizer, scheduler, DataLoader or loss (its arguments).
    """

    kind: str
    qualname: str | None = None
    module: ModuleRef | None = field(default=None, repr=False)
    schedule: str | None = None
    shuffle: bool | None = None
    sampler: bool | None = None
    activation: str | None = None
    layout: str | None = None
    detached: bool | None = None
    params: tuple["Value | None", ...] | None = None
    split: str | None = None
    iterable: bool | None = None
    random: bool | None = None
    elements: tuple["Value | None", ...] | None = None
    entries: tuple[tuple[str, "Value | None"], ...] | None = None
    origin: cst.Call | None = field(default=None, repr=False)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Value) and all(_same(getattr(self, f), getattr(other, f)) for f in _FIELDS)

    def __hash__(self) -> int:
        return hash((self.kind, self.qualname))

    def __repr__(self) -> str:
        facets = ", ".join(f"{f}={getattr(self, f)!r}" for f in _FIELDS[1:]
                           if f not in ("module", "origin", "params") and getattr(self, f) is not None)
        return f"Value({self.kind}{', ' if facets else ''}{facets})"

    def element(self, index: int) -> "Value | None":
        """The ``index``-th element of a TUPLE."""
        if self.kind != TUPLE or self.elements is None or not -len(self.elements) <= index < len(self.elements):
            return None
        return self.elements[index]

    def entry(self, key: str) -> "Value | None":
        """The value under the string ``key`` of a MAPPING."""
        return dict(self.entries or ()).get(key) if self.kind == MAPPING else None


_FIELDS = ("kind", "qualname", "module", "schedule", "shuffle", "sampler", "activation", "layout", "detached",
           "params", "split", "iterable", "random", "elements", "entries", "origin")


def _same(a: object, b: object) -> bool:
    """Facet equality; modules are the same when they are built by the same constructor call or class."""
    if isinstance(a, ModuleRef) and isinstance(b, ModuleRef):
        return a.classdef is b.classdef and (a.classdef is not None or a.qualname == b.qualname)
    if isinstance(a, cst.CSTNode) or isinstance(b, cst.CSTNode):
        return a is b
    return a == b


def join(a: Value | None, b: Value | None) -> Value | None:
    """The least value both ``a`` and ``b`` are: unknown unless they are of one kind; facets they disagree on
    become unknown."""
    if a is None or b is None or a.kind != b.kind:
        return None
    facets = {}
    for name in _FIELDS[1:]:
        x, y = getattr(a, name), getattr(b, name)
        if name in ("elements", "params") and x is not None and y is not None and len(x) == len(y):
            facets[name] = tuple(join(i, j) for i, j in zip(x, y))
        elif name == "entries" and x is not None and y is not None and [k for k, _ in x] == [k for k, _ in y]:
            facets[name] = tuple((k, join(i, j)) for (k, i), (_, j) in zip(x, y))
        else:
            facets[name] = x if _same(x, y) else None
    return Value(a.kind, **facets)


def values(program: ProgramModel) -> "Values":
    """The program's abstract values, built once per program."""
    return program.cached(Values)


class Values:
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

    def bound(self, binding: Binding) -> Value | None:
        """What ``binding`` (of this module) binds: its value, or its element of an unpacked tuple."""
        if binding.value is not None:
            return self.of(binding.value)
        return self._unpacked(binding.target, binding, 0)

    # ---- definitions -----------------------------------------------------------------------------

    def _definition(self, expr: cst.BaseExpression, depth: int) -> Value | None:
        """The value of a definition the dataflow stopped at: a literal or a call."""
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
            return replace(_constructed(kind, qual, call), params=self._parameters(call_arg(call, "params", 0), depth))
        if kind is not None and kind != MODEL:
            return _constructed(kind, qual, call)
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
        return self._tensor(call, depth)

    def _method(self, call: cst.Call, func: cst.Attribute, first, depth: int) -> Value | None | bool:
        """``receiver.method(...)`` that says what it returns; False when the method is not one of those."""
        method = func.attr.value
        receiver_qual = self._constructor_of(func.value, depth)
        if method == "prepare" and receiver_qual in ("accelerate.Accelerator", "accelerate.accelerator.Accelerator"):
            return self._arguments(call, depth)
        if method in ("setup", "setup_dataloaders") and receiver_qual in (
                "lightning.Fabric", "lightning.fabric.Fabric", "lightning_fabric.Fabric"):
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

    def _tensor(self, call: cst.Call, depth: int) -> Value | None:
        """A tensor whose activation the dataflow knows (``F.softmax(x)``, a model's output)."""
        activation = self.flow.activation(call, depth + 1)
        return Value(TENSOR, activation=activation.kind) if activation is not None else None

    def _loader(self, call: cst.Call, qual: str, depth: int) -> Value:
        """``DataLoader(dataset, ...)``: its order, and its dataset's split."""
        value = _constructed(DATALOADER, qual, call)
        dataset = call_arg(call, "dataset", 0)
        data = self.of(dataset, depth + 1) if dataset is not None else None
        return replace(value, split=data.split) if data is not None and data.kind == DATASET else value

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

    def _transform(self, call: cst.Call, qual: str, depth: int) -> Value | None:
        """A pipeline (``Compose([...])``) or one augmentation: whether a step draws at random."""
        if qual not in TRANSFORM_PIPELINES:
            own = qual.rsplit(".", 1)[-1] == "Lambda"  # a function of the user's: it may draw
            return Value(TRANSFORM, qualname=qual, random=None if own else is_random_augmentation(qual, call))
        steps = call_arg(call, "transforms", 0)
        if not isinstance(steps, (cst.List, cst.Tuple)) or any(isinstance(e, cst.StarredElement) for e in steps.elements):
            return Value(TRANSFORM, qualname=qual)
        randoms = []
        for element in steps.elements:
            step = self.of(element.value, depth + 1)
            randoms.append(step.random if step is not None and step.kind == TRANSFORM else None)  # unknown: may draw
        random = True if True in randoms else (False if randoms and None not in randoms else None)
        return Value(TRANSFORM, qualname=qual, random=random)

    def _dataset(self, call: cst.Call, qual: str | None) -> Value | None:
        """A dataset: of ``torchvision.datasets`` / ``torch.utils.data``, Hugging Face's ``load_dataset``, or a
        class (here or in a module of the project) deriving from ``Dataset`` / ``IterableDataset``."""
        iterable = None
        if qual in DATASET_NAMES or qual and qual.startswith(DATASET_PREFIXES):
            streaming = next((a.value for a in call.args if a.keyword is not None and a.keyword.value == "streaming"), None)
            iterable = qual in ITERABLE_DATASETS or dotted_name(streaming) == "True"
        elif isinstance(call.func, cst.Name) and qual is not None and "." not in qual:
            bases = self._dataset_bases(call.func.value)
            if bases is None:
                return None
            iterable = any(b in ITERABLE_DATASETS for b in bases)
        else:
            return None
        return Value(DATASET, qualname=qual, split=_split(call), iterable=iterable)

    def _dataset_bases(self, class_name: str, depth: int = 0) -> list[str] | None:
        """The torch dataset classes ``class_name`` derives from (through classes of this module or its siblings),
        or None when it is not a dataset class we can see."""
        classdef = self.program.classes.get(class_name)
        if classdef is None or depth > 4:
            return None
        found = []
        for base in classdef.bases:
            qual = self.program.qualname(base.value)
            if qual in DATASET_NAMES:
                found.append(qual)
            elif qual is not None and "." not in qual:
                deeper = self._dataset_bases(qual, depth + 1)
                if deeper:
                    found.extend(deeper)
        return found or None

    def _tokenizer(self, func: cst.BaseExpression, depth: int) -> bool:
        """``tokenizer`` was built by a Hugging Face tokenizer's ``from_pretrained``."""
        qual = self._constructor_of(func, depth)
        return qual is not None and qual.startswith("transformers.") and qual.endswith("Tokenizer.from_pretrained") \
            or qual is not None and qual.startswith("transformers.") and qual.endswith("TokenizerFast.from_pretrained")

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


def _constructed(kind: str, qual: str, call: cst.Call) -> Value:
    """The value a constructor call builds, with the facets its arguments say."""
    keywords = {a.keyword.value: a.value for a in call.args if a.keyword is not None}
    if kind == SCHEDULER:
        last = qual.rsplit(".", 1)[-1]
        schedule = EPOCH if last in EPOCH_SCHEDULERS else STEP if last in STEP_SCHEDULERS else None
        return Value(kind, qualname=qual, schedule=schedule, origin=call)
    if kind == DATALOADER and qual in DATALOADER_NAMES:
        positional = [a for a in call.args if a.keyword is None]
        if any(a.star for a in call.args):
            return Value(kind, qualname=qual, origin=call)
        shuffle = keywords.get("shuffle", positional[2].value if len(positional) > 2 else None)
        literal = None if shuffle is not None and dotted_name(shuffle) not in ("True", "False") else (
            shuffle is not None and dotted_name(shuffle) == "True")
        sampler = "sampler" in keywords or "batch_sampler" in keywords or len(positional) > 3
        return Value(kind, qualname=qual, shuffle=literal, sampler=sampler, origin=call)
    return Value(kind, qualname=qual, origin=call)


def _split(call: cst.Call) -> str | None:
    """TRAIN_ROLE / EVAL_ROLE from a dataset constructor's ``train=True`` / ``split="validation"``."""
    for arg in call.args:
        if arg.keyword is None:
            continue
        if arg.keyword.value == "train" and dotted_name(arg.value) in ("True", "False"):
            return TRAIN_ROLE if dotted_name(arg.value) == "True" else EVAL_ROLE
        if arg.keyword.value == "split":
            return name_role(string_literal(arg.value))
    return None


def _transposed(value: Value | None) -> Value | None:
    """What ``value.transpose(...)`` / ``.permute(...)`` / ``.T`` is: a tensor with its dims reordered."""
    if value is None or value.kind != TENSOR:
        return None
    return replace(value, layout=TRANSPOSED)


def is_random_augmentation(qual: str, call: cst.Call) -> bool:
    """A call of ``qual`` (of an augmentation library) that draws at random: ``RandomCrop``, ``ColorJitter``, a flip
    with ``p`` below 1, ...; the containers (``RandomApply``, ``OneOf``) are not, their members are."""
    last = qual.rsplit(".", 1)[-1]
    randomly_named = last.startswith("Random") and last[6:7].isupper() or last.startswith("Rand") and last[4:5].isupper()
    if not (randomly_named or last in RANDOM_AUGMENTATIONS):
        return False
    if last in ("RandomApply", "RandomChoice", "RandomOrder", "OneOf", "SomeOf"):
        return False  # the containers: their members are judged instead
    probability = None
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value in ("p", "prob", "probability"):
            probability = arg.value
    if probability is None and last in ("RandomHorizontalFlip", "RandomVerticalFlip", "RandomGrayscale") and call.args \
            and call.args[0].keyword is None:
        probability = call.args[0].value
    value = number_literal(probability) if probability is not None else None
    if value == 0:
        return False
    if value is not None and value >= 1 and last in FIXED_WHEN_ALWAYS:
        return False
    return True
