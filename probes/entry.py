"""``--entry pkg.module:function``: a step built from what the user's function returns.

The function takes no arguments and returns ``(model, batch, loss_fn, optimizer)`` or a dict with those keys.
``batch`` is ``(inputs, targets)``; ``inputs`` a tensor, a tuple of tensors or a dict of keyword tensors.
``loss_fn(output, targets)`` returns the loss. ``optimizer`` is an optimizer or a factory ``f(params)``.
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

from .capture import _LOSS_FUNCS, LossCall, user_site
from .replay import CannotDrive, Step, StepResult, batch_axis_of, held_out_part, map_structure
from .workbench import Workbench


def load_entry(spec: str, cwd: str) -> tuple[Callable[[], Any], tuple[str, int] | None]:
    """Import ``pkg.module:function`` with the working directory on sys.path."""
    if ":" not in spec:
        raise CannotDrive(f"--entry must look like pkg.module:function, got {spec!r}")
    mod_name, fn_name = spec.split(":", 1)
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    module = importlib.import_module(mod_name)
    fn = module
    for part in fn_name.split("."):
        fn = getattr(fn, part, None)
        if fn is None:
            raise CannotDrive(f"{mod_name} has no attribute {fn_name!r}")
    try:
        site = (os.path.abspath(inspect.getsourcefile(fn) or ""), inspect.getsourcelines(fn)[1])
    except (TypeError, OSError):
        site = None
    return fn, site


def unpack(result: Any) -> tuple[torch.nn.Module, Any, Callable, Any]:
    if isinstance(result, dict):
        try:
            return result["model"], result["batch"], result["loss_fn"], result["optimizer"]
        except KeyError as exc:
            raise CannotDrive(f"the entry point's dict lacks the key {exc.args[0]!r} "
                              "(needs model, batch, loss_fn, optimizer)") from None
    if isinstance(result, (tuple, list)) and len(result) == 4:
        return tuple(result)  # type: ignore[return-value]
    raise CannotDrive("the entry point must return (model, batch, loss_fn, optimizer) or a dict with those keys")


class _LossWatch(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls: list[LossCall] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        kind = _LOSS_FUNCS.get(func)
        if kind is not None:
            self.calls.append(LossCall(kind, func.__name__, args[0] if args else kwargs.get("input"),
                                       args[1] if len(args) > 1 else kwargs.get("target"), dict(kwargs), out, 0,
                                       user_site()))
        return out


class EntryStep(Step):
    """model(inputs) → loss_fn(output, targets)."""

    batch_source = "entry"

    def __init__(self, model: torch.nn.Module, batch: Any, loss_fn: Callable, optimizer: Any, sub_batch: int = 8,
                 batch_dim: int | None = None):
        if not isinstance(model, torch.nn.Module):
            raise CannotDrive(f"the entry point's model is a {type(model).__name__}, not a torch.nn.Module")
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise CannotDrive("the entry point's batch must be (inputs, targets)")
        self.models = [model]
        self.inputs, self.targets = batch
        self.loss_fn = loss_fn
        if callable(optimizer) and not isinstance(optimizer, torch.optim.Optimizer):
            optimizer = optimizer(model.parameters())
        self.optimizer = optimizer
        first = next((t for t in _tensors(self.inputs)), None)
        if first is None:
            raise CannotDrive("the entry point's inputs hold no tensor")
        if batch_dim is not None:  # --batch-dim; otherwise the samples are on dimension 0
            if first.dim() <= batch_dim:
                raise CannotDrive(f"--batch-dim {batch_dim}, but the entry point's first input has shape "
                                  f"{tuple(first.shape)}")
            self.batch_dim, self.batch_dim_source = batch_dim, "--batch-dim"
        self.batch_size = int(first.shape[self.batch_dim]) if first.dim() else 1
        self.first_shape = list(first.shape)
        self._requested_sub = sub_batch
        self.sub_batch = None
        self.loss_call = None
        self.first_loss: torch.Tensor | None = None

    def observe(self) -> torch.Tensor:
        """One forward pass on the real model, watching which loss function is called."""
        watch = _LossWatch()
        with watch:
            loss = self._forward(self.models[0], self.inputs, self.targets)
        self.loss_call = watch.calls[-1] if watch.calls else None
        self.first_loss = loss
        return loss

    def _forward(self, model, inputs, targets):
        if isinstance(inputs, dict):
            out = model(**inputs)
        elif isinstance(inputs, (tuple, list)):
            out = model(*inputs)
        else:
            out = model(inputs)
        return out, self.loss_fn(out, targets)

    def choose_sub_batch(self, wb: Workbench) -> None:
        k = min(self._requested_sub, self.batch_size)
        if k < self.batch_size:
            self.sub_batch = k
            self.vary_sub_batch()

    def _window(self, sub: bool, held_out: bool) -> tuple[int, int] | None:
        """(size, start) of the samples a run uses; None for the whole batch."""
        if held_out:
            return held_out_part(self.sub_batch, self.batch_size, self.sub_start)
        if sub and self.sub_batch is not None:
            return self.sub_batch, self.sub_start
        return None

    def _slice(self, x: Any, window: tuple[int, int] | None) -> Any:
        if window is None:
            return x
        (k, start), n, bd = window, self.batch_size, self.batch_dim

        def cut(t: Any) -> Any:
            axis = batch_axis_of(t, n, bd) if isinstance(t, torch.Tensor) and t.dim() else None
            return t.narrow(axis, start, k).contiguous() if axis is not None else t

        return map_structure(x, cut)

    def run(self, wb: Workbench, *, sub: bool = False, zero_inputs: bool = False, grad_inputs: bool = False,
            model_hook=None, held_out: bool = False) -> StepResult:
        window = self._window(sub, held_out)
        k = window[0] if window else self.batch_size
        inputs = self._slice(self.inputs, window)
        targets = self._slice(self.targets, window)
        model_inputs: list[torch.Tensor] = []
        input_axes: list[int | None] = []

        def prep(t):
            if not isinstance(t, torch.Tensor):
                return t
            if zero_inputs:
                t = torch.zeros_like(t)
            if grad_inputs and t.is_floating_point():
                t = t.detach().clone().requires_grad_(True)
                model_inputs.append(t)
                input_axes.append(batch_axis_of(t, k, self.batch_dim))
            return t

        inputs = map_structure(inputs, prep)
        out, loss = self._forward(wb.models[0], inputs, targets)
        if model_hook is not None:
            model_hook(out)
        return StepResult(loss=loss, model_outputs=[out], model_inputs=model_inputs, input_axes=input_axes)

    def input_tensors(self) -> list[torch.Tensor]:
        return list(_tensors(self.inputs))

    def target_tensors(self) -> list[torch.Tensor]:
        return list(_tensors(self.targets))


def _tensors(x: Any):
    from .replay import iter_tensors

    return iter_tensors(x)
