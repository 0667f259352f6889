"""The data side of the abstract values: DataLoaders (their dataset's split), datasets (split, streaming),
transform pipelines (whether a step draws at random) and tokenizers' BatchEncodings. :class:`DataValues` is a
part of :class:`~.values.Values` (it relies on its ``of``), not used alone."""

from __future__ import annotations

from dataclasses import replace

import libcst as cst

from .model import ProgramModel
from .name_guesses import EVAL_ROLE, TRAIN_ROLE, name_role
from .syntax import call_arg, dotted_name, number_literal, string_literal
from .torch_api import (
    DATALOADER,
    DATASET,
    DATASET_NAMES,
    DATASET_PREFIXES,
    FIXED_WHEN_ALWAYS,
    ITERABLE_DATASETS,
    RANDOM_AUGMENTATIONS,
    TRANSFORM_PIPELINES,
)
from .value_lattice import TRANSFORM, Value, constructed


class DataValues:
    """The data questions of :class:`~.values.Values`."""

    program: ProgramModel

    def _loader(self, call: cst.Call, qual: str, depth: int) -> Value:
        """``DataLoader(dataset, ...)``: its order, and its dataset's split."""
        value = constructed(DATALOADER, qual, call)
        dataset = call_arg(call, "dataset", 0)
        data = self.of(dataset, depth + 1) if dataset is not None else None
        return replace(value, split=data.split) if data is not None and data.kind == DATASET else value

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
