"""What every check sees: the replayable step, the workbench (the script's own objects, restored after each
check), the loss's kind and the source sites."""

from __future__ import annotations

import functools
import inspect
import math
import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .replay import Step
from .report import CheckEntry
from .workbench import Workbench


@dataclass
class LossInfo:
    """Which loss the script uses and what its first value was."""

    kind: str  # cross-entropy | nll | bce | bce-logits | mse | l1 | ... | unknown
    value: float
    classes: int | None = None
    input: torch.Tensor | None = None  # the loss function's input at capture (logits, probabilities, outputs)
    target: torch.Tensor | None = None
    kwargs: dict = field(default_factory=dict)
    reduction: str | None = "mean"  # how the criterion reduces; None: other terms enter the loss (e.g. BCE + KL)
    elements: int | None = None  # what reduction='mean' divides by: samples (class targets) or elements

    def per_element(self) -> float:
        """The loss as reduction='mean' would give it (a summed loss divided by its samples / elements)."""
        if self.reduction == "sum" and self.elements:
            return self.value / self.elements
        return self.value


@dataclass
class CheckResult:
    """One check's verdict, as it goes into the JSON report."""

    id: str
    status: str
    message: str
    measured: Any = None
    expected: Any = None
    site: tuple[str, int] | None = None
    series: dict = field(default_factory=dict)
    details: dict = field(default_factory=dict)

    def to_json(self, script: str) -> dict:
        """The report's entry for this verdict (``path`` only when the site is not in ``script``)."""
        path = self.site[0] if self.site and os.path.abspath(self.site[0]) != os.path.abspath(script) else None
        return CheckEntry(self.id, self.status, self.message, _jsonable(self.measured), _jsonable(self.expected),
                          self.site[1] if self.site else None, path, _jsonable(self.series),
                          _jsonable(self.details) if self.details else None).to_json()


def loss_info(call: Any, value: float, reduction: str | None = "mean") -> LossInfo:
    """What the checks need to know about the loss, from the loss function call seen at capture (or None) and
    its ``reduction`` (None when the loss passed to backward() is not that criterion alone)."""
    if call is None:
        return LossInfo(kind="unknown", value=value)
    classes = None
    inp = call.input if isinstance(call.input, torch.Tensor) else None
    target = call.target if isinstance(call.target, torch.Tensor) else None
    if call.kind in ("cross-entropy", "nll") and inp is not None and inp.dim() >= 1:
        classes = int(inp.shape[1] if inp.dim() >= 2 else inp.shape[0])
    return LossInfo(kind=call.kind, value=value, classes=classes,
                    input=inp.detach() if inp is not None else None,
                    target=target.detach() if target is not None else None,
                    kwargs=dict(call.kwargs), reduction=reduction, elements=_mean_count(call.kind, inp, target,
                                                                                        classes, call.kwargs))


def _mean_count(kind: str, inp: torch.Tensor | None, target: torch.Tensor | None, classes: int | None,
                kwargs: dict) -> int | None:
    """How many terms reduction='mean' averages: non-ignored class targets, else the input's elements."""
    if inp is None:
        return None
    if kind in ("cross-entropy", "nll") and classes:
        if target is not None and not target.is_floating_point():
            return int((target != kwargs.get("ignore_index", -100)).sum())
        return inp.numel() // classes
    return inp.numel()


def _jsonable(x: Any) -> Any:
    if isinstance(x, float):
        return x if math.isfinite(x) else (None if math.isnan(x) else ("inf" if x > 0 else "-inf"))
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.detach().cpu().tolist())
    if isinstance(x, (int, str, bool)) or x is None:
        return x
    try:
        import numpy as np

        if isinstance(x, np.generic):
            return _jsonable(x.item())
    except Exception:
        pass
    return str(x)


def finite(x: float | None) -> bool:
    """A number that is neither None, NaN nor infinite."""
    return x is not None and math.isfinite(x)


def constant(target) -> bool:
    """True when every target is the same value (and there are several)."""
    if not isinstance(target, torch.Tensor) or target.numel() < 2:
        return False
    flat = target.detach().reshape(-1)
    return bool((flat == flat[0]).all())


def scalar(loss: torch.Tensor) -> float:
    loss = loss.detach()
    if loss.numel() != 1:
        loss = loss.float().mean()
    return float(loss.float().cpu())


OVERFIT_FRACTION = 0.3  # overfit-batch passes when the loss falls below this fraction of its start
OVERFIT_ESCALATION = 4  # a fit still falling after the configured steps continues up to this many times as many


def still_falling(losses: list[float]) -> bool:
    """True while a fit is still making progress: the mean of the last quarter of the losses is at least 1 % below
    the mean of the quarter before, or the loss falls steadily — at least 1 % in all since the first quarter, and in
    the last quarter at least half as fast as on average (a low learning rate's slow, straight descent, such as
    Adam's at 5e-4 on a zero-initialised bigram table, is not a plateau)."""
    w = max(3, len(losses) // 4)
    if len(losses) < 2 * w:
        return False
    recent, before = sum(losses[-w:]) / w, sum(losses[-2 * w:-w]) / w
    if recent < before - 0.01 * abs(before):
        return True
    first = sum(losses[:w]) / w
    fell = first - recent
    pace = fell * w / (len(losses) - w)  # the average fall per quarter's length of steps
    return fell >= 0.01 * abs(first) and before - recent >= 0.5 * pace


def regularisation_off(models: list[torch.nn.Module], optimizer: Any) -> tuple[list[str], Callable[[], None]]:
    """Turn dropout (p → 0) and the optimizer's weight decay (→ 0) off; what was turned off and how to undo it."""
    undo: list[Callable[[], None]] = []
    layers = 0
    for model in models:
        for m in model.modules():
            attr = "p" if isinstance(m, torch.nn.modules.dropout._DropoutNd) else \
                "dropout" if isinstance(m, torch.nn.MultiheadAttention) else None
            value = getattr(m, attr) if attr else 0
            if value > 0:
                undo.append(functools.partial(setattr, m, attr, value))
                setattr(m, attr, 0.0)
                layers += 1
    decays = []
    for g in getattr(optimizer, "param_groups", None) or []:
        wd = g.get("weight_decay")
        if isinstance(wd, (int, float)) and wd > 0:
            decays.append(float(wd))
            undo.append(functools.partial(g.__setitem__, "weight_decay", wd))
            g["weight_decay"] = 0.0
    notes = []
    if layers:
        notes.append(f"dropout ({layers} layer{'s' if layers > 1 else ''})")
    if decays:
        notes.append(f"weight decay ({max(decays):g})")

    def restore() -> None:
        for fn in reversed(undo):
            fn()

    return notes, restore


def needs_closure(optimizer: Any) -> bool:
    """True for optimizers whose ``step`` requires a closure that re-evaluates the loss (LBFGS)."""
    try:
        closure = inspect.signature(type(optimizer).step).parameters.get("closure")
    except (TypeError, ValueError):
        return isinstance(optimizer, torch.optim.LBFGS)
    return closure is not None and closure.default is inspect.Parameter.empty


def optimizer_step(optimizer: Any, forward: Callable[[], torch.Tensor]) -> None:
    """One optimizer step after ``backward()``; a closure optimizer gets a closure that zeroes the gradients,
    re-runs ``forward`` and back-propagates, as the script's own closure does."""
    if not needs_closure(optimizer):
        optimizer.step()
        return

    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = forward()
        loss = loss if loss.numel() == 1 else loss.float().mean()
        loss.backward()
        return loss

    optimizer.step(closure)


class ProbeContext:
    """Shared state for the checks, with the training loop they all use."""

    def __init__(self, step: Step, wb: Workbench, loss: LossInfo, *, steps: int, sites: dict,
                 progress: Callable[[str, int, int], None] | None = None, device: str = "cpu",
                 allow_mixing: bool = False):
        self.step = step
        self.allow_mixing = allow_mixing  # --allow-mixing: the model mixes samples on purpose
        self.wb = wb
        self.loss = loss
        self.steps = steps
        self.sites = sites  # model, loss, loop, optimizer, data -> (file, line)
        self.progress = progress or (lambda check, i, n: None)
        self.device = device
        self.cache: dict[str, Any] = {}
        self.warmup: str | None = None  # why the probed step's rate is a warmup's, after following one (warmup.py)
        self.probed_step = 1  # which training step was probed (a later one: --step N, or past a warmup)

    @property
    def optimizer(self) -> Any:
        return self.wb.optimizer

    def configured_lrs(self) -> list[float]:
        opt = self.wb.optimizer
        return [float(g["lr"]) for g in opt.param_groups] if opt is not None and opt.param_groups else []

    def zero_lr_reason(self) -> str | None:
        """Why training at the probed step says nothing, when every parameter group's learning rate is 0 there (a
        warmup from 0 set by hand, with no scheduler or constructor lr to undo it), or is still a warmup's after
        following it as far as the probe does (``warmup``); None otherwise."""
        if self.warmup:
            return self.warmup
        lrs = self.configured_lrs()
        if not lrs or any(lr != 0 for lr in lrs):
            return None
        return ("the learning rate is 0 in every parameter group at the probed step (a warmup from 0 set by hand, "
                "with no scheduler or constructor lr to read the base value from): training at it changes nothing "
                "— probe a step past the warmup with --step N")

    def train(self, check: str, steps: int, *, sub: bool = True, zero_inputs: bool = False,
              lrs: list[float] | None = None, stop: Callable[[list[float]], bool] | None = None,
              plain: bool = False) -> list[float]:
        """Run up to ``steps`` optimizer steps on the replayed batch from the captured state; the losses.
        ``plain``: with dropout and weight decay turned off (restored afterwards)."""
        wb = self.wb
        opt = wb.optimizer
        if opt is None:
            raise RuntimeError("no optimizer holds the model's parameters")
        wb.reset()
        restore = regularisation_off(wb.models, opt)[1] if plain else None
        try:
            return self._train(check, steps, sub, zero_inputs, lrs, stop)
        finally:
            wb.reset()
            if restore is not None:
                restore()

    def _train(self, check: str, steps: int, sub: bool, zero_inputs: bool, lrs: list[float] | None,
               stop: Callable[[list[float]], bool] | None) -> list[float]:
        wb = self.wb
        opt = wb.optimizer
        base = [g["lr"] for g in opt.param_groups]
        losses: list[float] = []
        for i in range(steps):
            if lrs is not None:
                for g, b in zip(opt.param_groups, base):
                    g["lr"] = lrs[i] * (b / base[0] if base[0] else 1.0)
            opt.zero_grad(set_to_none=True)
            result = self.step.run(wb, sub=sub, zero_inputs=zero_inputs)
            loss = result.loss if result.loss.numel() == 1 else result.loss.float().mean()
            value = scalar(loss)
            losses.append(value)
            self.progress(check, i + 1, steps)
            if not math.isfinite(value) or (stop is not None and stop(losses)):
                break
            loss.backward()
            optimizer_step(opt, lambda: self.step.run(wb, sub=sub, zero_inputs=zero_inputs).loss)
        return losses

    def regularisation_notes(self) -> list[str]:
        """What the overfitting runs turn off (dropout, weight decay), as short phrases."""
        if "regularisation" not in self.cache:
            notes, restore = regularisation_off(self.wb.models, self.wb.optimizer)
            restore()
            self.cache["regularisation"] = notes
        return self.cache["regularisation"]
