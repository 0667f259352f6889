"""The lattice of abstract values (:mod:`.values` computes them): the kinds, :class:`Value` with its facets,
:func:`join`, and the value a constructor call builds from its arguments alone."""

from __future__ import annotations

from dataclasses import dataclass, field

import libcst as cst

from .dataflow import ModuleRef
from .syntax import dotted_name
from .torch_api import DATALOADER, DATALOADER_NAMES, EPOCH_SCHEDULERS, SCHEDULER, STEP_SCHEDULERS

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
    - MODEL: ``module``, the module (its ``torch.nn`` constructor or its class, maybe in another file); calling
      it gives what its ``forward`` returns (:meth:`Values.output`);
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


def constructed(kind: str, qual: str, call: cst.Call) -> Value:
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
