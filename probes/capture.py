"""Hooks that watch the user's script until its first training step and record what the checks need.

A ``backward()`` is a training step when an optimizer step follows it (global optimizer step hooks), when it runs
inside one (LBFGS's closure), or when the parameters it reached change by hand before the next ``backward()``; one
that reaches no parameter (an autograd demo on a plain tensor) never is. Its record is kept until that is known.

Installed before the script imports anything: global module forward hooks (depth tracking and a record of
every outermost module call), a ``TorchFunctionMode`` that records the torch operations done outside any module
(the "tape", from which the step is replayed), patches on ``Tensor.backward``/``torch.autograd.backward``,
on ``Optimizer.__init__`` and ``Module.__init__`` (to know where things were built) and a tee on
``DataLoader.__iter__``.
"""

from __future__ import annotations

import collections
import math
import os
import sys
import weakref
from dataclasses import dataclass, field
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

# modules whose input layout says where the batch is: (batch, seq, ...) when batch_first, else (seq, batch, ...)
_SEQUENCE_MODULES = (torch.nn.RNNBase, torch.nn.MultiheadAttention, torch.nn.TransformerEncoderLayer,
                     torch.nn.TransformerDecoderLayer, torch.nn.Transformer)

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
    dataloader_batch_size: int | None = None
    sequence_calls: list = field(default_factory=list)  # (module type, batch_first, batch size seen there)
    state_tensors: list = field(default_factory=list)  # recurrent hidden states handed to RNN modules
    training_step: int = 1  # which training step (a backward followed by an optimizer step) this is
    followed_by: str = "optimizer step"  # or "parameter update" (hand-written SGD), "end of script"
    update_lr: float | None = None  # a hand-written update's learning rate, when it is plain SGD
    update_reason: str | None = None  # why no learning rate was read off a hand-written update
    stepped_optimizer: Any = None  # the optimizer whose step made this backward() a training step


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
    """Installs the hooks; at the wanted training step (the first by default) hands a ``Captured`` to
    ``on_backward``."""

    def __init__(self, on_backward: Callable[[Captured], None], tape_limit: int = 20000, step: int = 1):
        self.on_backward = on_backward
        self.wanted_step = max(1, int(step))
        self.training_steps = 0  # backward()s confirmed as training, by the optimizer step that followed
        self.pending: Captured | None = None  # the last backward() that reached parameters, awaiting a step
        self._pending_params: list[torch.Tensor] = []
        self._pending_sum: float | None = None
        self._pending_values: list[torch.Tensor] | None = None  # without any optimizer: the parameters before
        self._pending_grads: list[torch.Tensor | None] | None = None  # ... and their gradients after backward()
        self.in_step = 0
        self.in_backward = 0
        self._step_counted = False
        self._stepping: Any = None  # the optimizer whose step() is running
        self._no_step_hooks = False
        self.skipped_backwards = 0  # backward()s that reached no parameter (autograd demos)
        self.spawn_site: tuple[str, int] | None = None  # where mp.spawn handed training to workers (followed)
        self.spawn_nprocs = 0
        self.process_site: tuple[str, int] | None = None  # where the script started a multiprocessing.Process
        self.first_worker_pid: int | None = None  # that process
        self.recording = False
        self.depth = 0
        self.tape: collections.deque[Entry] = collections.deque(maxlen=tape_limit)
        self.loss_calls: collections.deque[LossCall] = collections.deque(maxlen=2000)
        self.module_sites: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.optimizer_sites: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self.optimizers: weakref.WeakSet = weakref.WeakSet()
        self.dataloader_batches = 0
        self.dataloader_site: tuple[str, int] | None = None
        self.dataloader_batch_size: int | None = None
        self.sequence_calls: list[tuple[str, bool, int]] = []
        self.state_tensors: list[torch.Tensor] = []
        self.backward_calls = 0
        self.captured: Captured | None = None
        self._mode: _TapeMode | None = None
        self._handles: list[Any] = []
        self._step_handles: list[Any] = []
        self._saved: list[tuple[Any, str, Any]] = []
        self.stop_requested = False

    # -- installation -------------------------------------------------------------------------------------
    def install(self) -> None:
        self._patch(torch.Tensor, "backward", self._wrap_backward(torch.Tensor.backward, tensor_method=True))
        self._patch(torch.autograd, "backward", self._wrap_backward(torch.autograd.backward, tensor_method=False))
        self._patch(torch.nn.Module, "__init__", self._wrap_module_init(torch.nn.Module.__init__))
        self._patch(torch.optim.Optimizer, "__init__", self._wrap_optimizer_init(torch.optim.Optimizer.__init__))
        from torch.utils.data import DataLoader

        self._patch(DataLoader, "__iter__", self._wrap_dataloader_iter(DataLoader.__iter__))
        import torch.multiprocessing as torch_mp

        for name in ("spawn", "start_processes"):
            if hasattr(torch_mp, name):
                self._patch(torch_mp, name, self._wrap_spawn(getattr(torch_mp, name)))
        import multiprocessing.process

        self._patch(multiprocessing.process.BaseProcess, "start",
                    self._wrap_process_start(multiprocessing.process.BaseProcess.start))
        from torch.optim import optimizer as optimizer_mod

        if hasattr(optimizer_mod, "register_optimizer_step_post_hook"):  # torch >= 2.0
            self._step_handles.append(optimizer_mod.register_optimizer_step_pre_hook(self._step_pre_hook))
            self._step_handles.append(optimizer_mod.register_optimizer_step_post_hook(self._step_post_hook))
        else:  # no global step hooks: every backward() that reaches parameters counts as a step
            self.in_step, self._no_step_hooks = 1, True
        self._start_recording()

    def _start_recording(self) -> None:
        from torch.nn.modules import module as module_mod

        self._handles.append(module_mod.register_module_forward_pre_hook(self._pre_hook))
        try:
            self._handles.append(
                module_mod.register_module_forward_hook(self._post_hook, with_kwargs=True, always_call=True)
            )
        except TypeError:  # older torch: no kwargs in global hooks
            self._handles.append(module_mod.register_module_forward_hook(self._post_hook_nokw))
        self.depth = 0
        self._mode = _TapeMode(self)
        self._mode.__enter__()
        self.recording = True

    def resume(self, step: int, tape: list[Entry]) -> None:
        """Record again, after a probed step, up to training step ``step``, with ``tape`` (the probed step's
        record) kept in front: the next step may use tensors computed before it (a GAN's fake images)."""
        self.captured = None
        self.pending = None
        self.wanted_step = step
        self._clear_step()
        self.tape.extend(tape)
        self._start_recording()

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
        for handle in self._step_handles:
            handle.remove()
        self._step_handles.clear()
        for owner, name, old in reversed(self._saved):
            setattr(owner, name, old)
        self._saved.clear()

    # -- module hooks -------------------------------------------------------------------------------------
    def _pre_hook(self, module, args):
        if self.recording and not _is_compiling():
            self.depth += 1
            if isinstance(module, _SEQUENCE_MODULES) and args and torch.is_grad_enabled():
                self._note_sequence(module, args)
        return None

    def _note_sequence(self, module: torch.nn.Module, args: tuple) -> None:
        """Where the batch sits at an RNN / attention / transformer call, and which tensors are hidden states."""
        x = args[0]
        if isinstance(x, torch.Tensor) and x.dim() == 3 and len(self.sequence_calls) < 64:
            first = bool(getattr(module, "batch_first", False))
            self.sequence_calls.append((type(module).__name__, first, int(x.shape[0] if first else x.shape[1])))
        if isinstance(module, torch.nn.RNNBase) and len(args) > 1 and len(self.state_tensors) < 64:
            hx = args[1]
            self.state_tensors.extend(t for t in (hx if isinstance(hx, (tuple, list)) else (hx,))
                                      if isinstance(t, torch.Tensor))

    def _clear_step(self) -> None:
        self.tape.clear()
        self.loss_calls.clear()
        self.sequence_calls = []
        self.state_tensors = []

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
            if recorder.captured is None and recorder.recording and not recorder.in_backward:
                tensors = args[0] if args else kwargs.get("tensors")
                loss = tensors if isinstance(tensors, torch.Tensor) else (tensors[0] if tensors else None)
                if isinstance(loss, torch.Tensor):
                    recorder._seen_backward(loss)
            recorder.in_backward += 1  # Tensor.backward calls torch.autograd.backward: one backward, not two
            try:
                result = original(*args, **kwargs)
            finally:
                recorder.in_backward -= 1
            if recorder._pending_values is not None and not recorder.in_backward:
                recorder._pending_grads = [None if p.grad is None else p.grad.detach().clone()
                                           for p in recorder._pending_params]
            return result

        backward.__wrapped__ = original  # type: ignore[attr-defined]
        return backward

    # -- which backward() is training ---------------------------------------------------------------------
    def _seen_backward(self, loss: torch.Tensor) -> None:
        """A backward() is training when an optimizer step follows it (or runs it, as LBFGS's closure does);
        one that reaches no parameter (``(x ** 2).backward()`` on a plain tensor) never is."""
        params = self._reached_parameters(loss)
        if not params:
            self.skipped_backwards += 1
            return
        if self.in_step:  # inside optimizer.step(closure): this step is training
            if not self._step_counted or self._no_step_hooks:
                self._step_counted = True
                self.training_steps += 1
                if self.training_steps == self.wanted_step:
                    cap = self._snapshot(loss)
                    cap.training_step = self.training_steps
                    cap.followed_by = "optimizer step (closure)"
                    cap.stepped_optimizer = self._stepping
                    self._deliver(cap)
            return
        if self.pending is not None and self._pending_sum is not None \
                and not _same(_param_sum(self._pending_params), self._pending_sum):
            # the parameters changed without an optimizer step: a hand-written update followed the last backward
            self._resolve("parameter update")
            if self.captured is not None:
                return
        self.pending = self._snapshot(loss)
        self._pending_params = params
        self._pending_sum = _param_sum(params)
        self._pending_values = None if self.optimizers else [p.detach().clone() for p in params]
        self._pending_grads = None
        self._clear_step()

    def _reached_parameters(self, loss: torch.Tensor) -> list[torch.Tensor]:
        """The leaves of ``loss``'s graph that are parameters (``nn.Parameter`` or held by an optimizer)."""
        held = {id(p) for opt in list(self.optimizers) for g in opt.param_groups for p in g["params"]}
        found = []
        for leaf in graph_leaves(loss):
            if isinstance(leaf, torch.nn.Parameter) or id(leaf) in held:
                found.append(leaf)
        return found

    def _step_pre_hook(self, optimizer, args, kwargs):
        self.in_step += 1
        self._stepping = optimizer
        self._step_counted = False
        if self.captured is None and self.pending is not None:
            self._step_counted = True
            self._resolve("optimizer step")

    def _step_post_hook(self, optimizer, args, kwargs):
        self.in_step = max(0, self.in_step - 1)

    def _resolve(self, followed_by: str) -> None:
        """The pending backward() was training: probe it when it is the wanted step, else forget it."""
        cap, params, self.pending, self._pending_params, self._pending_sum = \
            self.pending, self._pending_params, None, [], None
        values, grads, self._pending_values, self._pending_grads = self._pending_values, self._pending_grads, None, None
        if cap is None:
            return
        if followed_by == "parameter update":
            cap.update_lr, cap.update_reason = sgd_rate(params, values, grads)
        elif followed_by == "optimizer step":
            cap.stepped_optimizer = self._stepping
        self.training_steps += 1
        if self.training_steps == self.wanted_step:
            cap.followed_by = followed_by
            cap.training_step = self.training_steps
            self._deliver(cap)

    def finish(self) -> None:
        """At the end of the script: a backward() still waiting for its step is the best there is — probe it."""
        if self.captured is None and self.pending is not None and self.wanted_step == self.training_steps + 1:
            self._resolve("end of script")

    def _snapshot(self, loss: torch.Tensor) -> Captured:
        return Captured(
            loss=loss,
            tape=list(self.tape),
            loss_calls=list(self.loss_calls),
            backward_site=user_site(),
            optimizers=list(self.optimizers),
            module_sites=self.module_sites,
            optimizer_sites=self.optimizer_sites,
            dataloader_batches=self.dataloader_batches,
            dataloader_site=self.dataloader_site,
            dataloader_batch_size=self.dataloader_batch_size,
            sequence_calls=list(self.sequence_calls),
            state_tensors=list(self.state_tensors),
            training_step=self.training_steps + 1,
        )

    def _deliver(self, cap: Captured) -> None:
        self.stop_recording()
        self.captured = cap
        self.pending = None
        self._clear_step()
        self.on_backward(cap)

    def _wrap_spawn(self, original: Callable) -> Callable:
        """``mp.spawn`` before the probed step: run the first worker here (``workers.run_first_worker``)."""
        recorder = self

        def spawn(*args, **kwargs):
            if recorder.captured is None and recorder.recording and recorder.spawn_site is None:
                from .workers import run_first_worker, spawn_args

                fn, fn_args, nprocs, join = spawn_args(args, kwargs)
                recorder.spawn_site, recorder.spawn_nprocs = user_site(), nprocs
                return run_first_worker(fn, fn_args, join)
            return original(*args, **kwargs)

        return spawn

    def _wrap_process_start(self, original: Callable) -> Callable:
        """Note a ``Process`` the script itself starts (not a DataLoader's worker) before the probed step."""
        recorder = self

        def start(process, *args, **kwargs):
            caller = sys._getframe(1)
            first = recorder.captured is None and recorder.process_site is None \
                and is_user_file(caller.f_code.co_filename)
            if first:
                recorder.process_site = (os.path.abspath(caller.f_code.co_filename), caller.f_lineno)
            result = original(process, *args, **kwargs)
            if first:  # set after the fork: in the first worker it stays None, in later ones it is set
                recorder.first_worker_pid = process.pid
            return result

        return start

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
                    recorder._clear_step()
                    recorder.dataloader_batches += 1
                    recorder.dataloader_site = site
                    size = getattr(loader, "batch_size", None)
                    recorder.dataloader_batch_size = size if isinstance(size, int) else None
                yield batch

        return __iter__


def graph_leaves(loss: torch.Tensor, limit: int = 200000) -> list[torch.Tensor]:
    """The tensors that ``loss.backward()`` accumulates gradients into."""
    leaves, seen = [], set()
    fn = getattr(loss, "grad_fn", None)
    stack = [fn] if fn is not None else []
    while stack and len(seen) < limit:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        variable = getattr(node, "variable", None)
        if isinstance(variable, torch.Tensor):
            leaves.append(variable)
        for nxt, _ in getattr(node, "next_functions", ()):
            if nxt is not None and nxt not in seen:
                stack.append(nxt)
    return leaves


def sgd_rate(params: list[torch.Tensor], before: list[torch.Tensor] | None,
             grads: list[torch.Tensor | None] | None) -> tuple[float | None, str | None]:
    """The learning rate of a hand-written update ``p -= lr * p.grad``, read off the change of the parameters
    (least squares); None and why when the change is not a multiple of the gradient (momentum, Adam by hand)."""
    if before is None or grads is None or len(grads) != len(params):
        return None, "the gradients of the hand-written update were not seen"
    dot = gg = dd = pp = 0.0
    deltas = []
    with torch.no_grad():
        for p, b, g in zip(params, before, grads):
            d = (p.detach() - b).double()
            if g is None:
                if d.abs().max().item() > 0:
                    return None, "a parameter without gradient changed in the hand-written update"
                continue
            g = g.double()
            deltas.append((d, g))
            dot += float((d * g).sum())
            gg += float((g * g).sum())
            dd += float((d * d).sum())
            pp += float((b.double() ** 2).sum())
        if gg == 0.0 or dd == 0.0 or dot >= 0:
            return None, "the hand-written update does not descend along the gradient"
        lr = -dot / gg
        residual = sum(float(((d + lr * g) ** 2).sum()) for d, g in deltas)
    if math.sqrt(residual) > 0.02 * math.sqrt(dd) + 1e-6 * math.sqrt(pp):
        return None, ("the hand-written update is not plain SGD (not a multiple of the gradient: momentum, weight "
                      "decay or an adaptive rule)")
    return lr, None


def _param_sum(params: list[torch.Tensor]) -> float:
    with torch.no_grad():
        return float(sum(float(p.detach().double().sum()) for p in params))


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))
