"""Hooks that watch the user's script until its first ``backward()`` and record what the checks need.

Installed before the script imports anything: global module forward hooks (depth tracking and a record of
every outermost module call), a ``TorchFunctionMode`` that records the torch operations done outside any module
(the "tape", from which the step is replayed), patches on ``Tensor.backward``/``torch.autograd.backward``,
on ``Optimizer.__init__`` and ``Module.__init__`` (to know where things were built) and a tee on
``DataLoader.__iter__``.
"""

from __future__ import annotations

import collections
import os
import sys
import weakref
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

LOSS_FUNCTIONS = {
    "cross_entropy": "cross-entropy",
    "nll_loss": "nll",
    "binary_cross_entropy": "bce",
    "binary_cross_entropy_with_logits": "bce-logits",
    "mse_loss": "mse",
    "l1_loss": "l1",
    "smooth_l1_loss": "smooth-l1",
    "huber_loss": "huber",
    "kl_div": "kl-div",
    "poisson_nll_loss": "poisson-nll",
    "gaussian_nll_loss": "gaussian-nll",
    "ctc_loss": "ctc",
    "multi_margin_loss": "multi-margin",
    "multilabel_soft_margin_loss": "multilabel-soft-margin",
    "soft_margin_loss": "soft-margin",
}
_LOSS_FUNCS = {getattr(torch.nn.functional, name): kind for name, kind in LOSS_FUNCTIONS.items()}

_HERE = os.path.dirname(os.path.abspath(__file__))
_REAL_HERE = os.path.realpath(_HERE)
_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_STDLIB = os.path.dirname(os.path.abspath(os.__file__))


class StopProbe(BaseException):
    """Raised into the user's script to stop it; ``except Exception`` cannot swallow it."""


def is_user_file(filename: str) -> bool:
    """True for source files of the user's own project (not torch, not the stdlib, not site-packages)."""
    if not filename or filename.startswith("<"):
        return False
    path = os.path.abspath(filename)
    if path.startswith((_HERE, _REAL_HERE, _TORCH_DIR, _STDLIB)):
        return False
    return "site-packages" not in path and "dist-packages" not in path


def user_site(skip_self: Any = None) -> tuple[str, int] | None:
    """The innermost frame of user code on the stack, skipping ``__init__`` frames of ``skip_self``."""
    frame = sys._getframe(1)
    while frame is not None:
        code = frame.f_code
        if skip_self is not None and code.co_name == "__init__" and frame.f_locals.get("self") is skip_self:
            frame = frame.f_back
            continue
        if is_user_file(code.co_filename):
            return (os.path.abspath(code.co_filename), frame.f_lineno)
        frame = frame.f_back
    return None


@dataclass
class Entry:
    """One call recorded at module depth 0: a module call or a torch function."""

    kind: str  # "module" | "func"
    fn: Any
    args: tuple
    kwargs: dict
    out: Any
    site: tuple[str, int] | None = None
    autocast: tuple = ()


@dataclass
class LossCall:
    """A call of a known loss function (at any depth), with its input and target."""

    kind: str
    name: str
    input: Any
    target: Any
    kwargs: dict
    out: Any
    depth: int
    site: tuple[str, int] | None


@dataclass
class Captured:
    """Everything recorded up to the first backward()."""

    loss: torch.Tensor
    tape: list[Entry]
    loss_calls: list[LossCall]
    backward_site: tuple[str, int] | None
    optimizers: list[Any]
    module_sites: Any
    optimizer_sites: Any
    dataloader_batches: int
    dataloader_site: tuple[str, int] | None


def autocast_state() -> tuple:
    """(device_type, dtype) pairs of the autocast contexts active now."""
    state = []
    for device in ("cuda", "cpu"):
        try:
            enabled = torch.is_autocast_enabled(device)  # torch >= 2.4
        except TypeError:
            enabled = torch.is_autocast_enabled() if device == "cuda" else torch.is_autocast_cpu_enabled()
        if enabled:
            try:
                dtype = torch.get_autocast_dtype(device)
            except (AttributeError, TypeError):
                dtype = torch.get_autocast_gpu_dtype() if device == "cuda" else torch.get_autocast_cpu_dtype()
            state.append((device, dtype))
    return tuple(state)


def _is_compiling() -> bool:
    try:
        return torch.compiler.is_compiling()
    except AttributeError:  # torch < 2.3
        try:
            return torch._dynamo.is_compiling()
        except Exception:
            return False


class _TapeMode(TorchFunctionMode):
    def __init__(self, recorder: "Recorder"):
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        rec = self.recorder
        if rec.recording and torch.is_grad_enabled():  # no_grad work (evaluation, data prep) is never replayed
            kind = _LOSS_FUNCS.get(func)
            if kind is not None:
                inp = args[0] if args else kwargs.get("input")
                tgt = args[1] if len(args) > 1 else kwargs.get("target")
                rec.loss_calls.append(
                    LossCall(kind, func.__name__, inp, tgt, dict(kwargs), out, rec.depth, user_site())
                )
            if rec.depth == 0:
                rec.tape.append(Entry("func", func, tuple(args), dict(kwargs), out, None, autocast_state()))
        return out


class Recorder:
    """Installs the hooks; on the first backward() hands a ``Captured`` to ``on_backward``."""

    def __init__(self, on_backward: Callable[[Captured], None], tape_limit: int = 20000):
        self.on_backward = on_backward
        self.recording = False
        self.depth = 0
        self.tape: collections.deque[Entry] = collections.deque(maxlen=tape_limit)
        self.loss_calls: collections.deque[LossCall] = collections.deque(maxlen=2000)
        self.module_sites: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.optimizer_sites: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.optimizers: weakref.WeakSet = weakref.WeakSet()
        self.dataloader_batches = 0
        self.dataloader_site: tuple[str, int] | None = None
        self.backward_calls = 0
        self.captured: Captured | None = None
        self._mode: _TapeMode | None = None
        self._handles: list[Any] = []
        self._saved: list[tuple[Any, str, Any]] = []
        self.stop_requested = False

    # -- installation -------------------------------------------------------------------------------------
    def install(self) -> None:
        from torch.nn.modules import module as module_mod

        self._handles.append(module_mod.register_module_forward_pre_hook(self._pre_hook))
        try:
            self._handles.append(
                module_mod.register_module_forward_hook(self._post_hook, with_kwargs=True, always_call=True)
            )
        except TypeError:  # older torch: no kwargs in global hooks
            self._handles.append(module_mod.register_module_forward_hook(self._post_hook_nokw))
        self._patch(torch.Tensor, "backward", self._wrap_backward(torch.Tensor.backward, tensor_method=True))
        self._patch(torch.autograd, "backward", self._wrap_backward(torch.autograd.backward, tensor_method=False))
        self._patch(torch.nn.Module, "__init__", self._wrap_module_init(torch.nn.Module.__init__))
        self._patch(torch.optim.Optimizer, "__init__", self._wrap_optimizer_init(torch.optim.Optimizer.__init__))
        from torch.utils.data import DataLoader

        self._patch(DataLoader, "__iter__", self._wrap_dataloader_iter(DataLoader.__iter__))
        self._mode = _TapeMode(self)
        self._mode.__enter__()
        self.recording = True

    def _patch(self, owner: Any, name: str, new: Any) -> None:
        self._saved.append((owner, name, owner.__dict__.get(name, getattr(owner, name))))
        setattr(owner, name, new)

    def stop_recording(self) -> None:
        """Leave the tape mode and drop the hooks; the patches stay (they only count)."""
        self.recording = False
        if self._mode is not None:
            try:
                self._mode.__exit__(None, None, None)
            except Exception:
                pass
            self._mode = None
        for handle in self._handles:
            handle.remove()
        self._handles.clear()

    def uninstall(self) -> None:
        self.stop_recording()
        for owner, name, old in reversed(self._saved):
            setattr(owner, name, old)
        self._saved.clear()

    # -- module hooks -------------------------------------------------------------------------------------
    def _pre_hook(self, module, args):
        if self.recording and not _is_compiling():
            self.depth += 1
        return None

    def _post_hook(self, module, args, kwargs, output):
        if not self.recording or _is_compiling():
            return None
        self.depth -= 1
        if self.depth <= 0:
            self.depth = 0
            if not torch.is_grad_enabled():
                return None
            self.tape.append(
                Entry("module", module, tuple(args), dict(kwargs or {}), output, user_site(), autocast_state())
            )
        return None

    def _post_hook_nokw(self, module, args, output):
        return self._post_hook(module, args, {}, output)

    # -- patches ------------------------------------------------------------------------------------------
    def _wrap_backward(self, original: Callable, tensor_method: bool) -> Callable:
        recorder = self

        def backward(*args, **kwargs):
            if recorder.stop_requested:
                raise StopProbe()
            if recorder.captured is None and recorder.recording:
                tensors = args[0] if args else kwargs.get("tensors")
                loss = tensors if isinstance(tensors, torch.Tensor) else (tensors[0] if tensors else None)
                if isinstance(loss, torch.Tensor):
                    recorder._capture(loss)
            return original(*args, **kwargs)

        backward.__wrapped__ = original  # type: ignore[attr-defined]
        return backward

    def _capture(self, loss: torch.Tensor) -> None:
        site = user_site()
        self.stop_recording()
        self.captured = Captured(
            loss=loss,
            tape=list(self.tape),
            loss_calls=list(self.loss_calls),
            backward_site=site,
            optimizers=list(self.optimizers),
            module_sites=self.module_sites,
            optimizer_sites=self.optimizer_sites,
            dataloader_batches=self.dataloader_batches,
            dataloader_site=self.dataloader_site,
        )
        self.tape.clear()
        self.loss_calls.clear()
        self.on_backward(self.captured)

    def _wrap_module_init(self, original: Callable) -> Callable:
        sites = self.module_sites

        def __init__(module, *args, **kwargs):
            original(module, *args, **kwargs)
            if module not in sites:
                site = user_site(skip_self=module)
                if site is not None:
                    sites[module] = site

        return __init__

    def _wrap_optimizer_init(self, original: Callable) -> Callable:
        recorder = self

        def __init__(opt, *args, **kwargs):
            original(opt, *args, **kwargs)
            recorder.optimizers.add(opt)
            site = user_site(skip_self=opt)
            if site is not None:
                recorder.optimizer_sites[opt] = site

        return __init__

    def _wrap_dataloader_iter(self, original: Callable) -> Callable:
        recorder = self

        def __iter__(loader):
            site = user_site()
            for batch in original(loader):
                if recorder.stop_requested:
                    raise StopProbe()
                if recorder.recording:
                    recorder.tape.clear()
                    recorder.loss_calls.clear()
                    recorder.dataloader_batches += 1
                    recorder.dataloader_site = site
                yield batch

        return __iter__
