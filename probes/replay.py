"""Turn the recorded tape into a training step that can be re-run on the model.

The loss tensor handed to the first ``backward()`` is traced back through the tape (module calls and torch
operations done outside modules) to the tensors that came from outside: those are the batch. Replaying the
needed entries in order with substituted tensors gives the loss again — for a loop that feeds a DataLoader
batch to ``criterion(model(x), y)`` as much as for hand-sliced batches with the loss computed inside the model.
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from .batch_layout import batch_axis_of, sample_list
from .capture import Captured, Entry, LossCall
from .gan import gan_role, holds
from .workbench import Workbench


class CannotDrive(Exception):
    """The script's step cannot be replayed; the message says exactly why."""


_DETACH_OPS = {"detach", "detach_"}
_SCALE_OPS = {"mul", "div", "__mul__", "__truediv__", "__rmul__", "__div__", "true_divide", "multiply", "divide"}


def _is_record(obj: Any) -> bool:
    """A plain dataclass instance (a model's output record such as ``Output(loss=..., logits=...)``)."""
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type)


def _record_items(obj: Any) -> list[tuple[str, Any]]:
    return [(f.name, getattr(obj, f.name, None)) for f in dataclasses.fields(obj)]


def iter_tensors(obj: Any, depth: int = 0):
    """Tensors inside nested tuples / lists / dicts / dataclasses (named tuples and ModelOutput included)."""
    if depth > 6:
        return
    if isinstance(obj, torch.Tensor):
        yield obj
    elif _is_record(obj) and not isinstance(obj, dict):
        for _, v in _record_items(obj):
            yield from iter_tensors(v, depth + 1)
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from iter_tensors(v, depth + 1)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            yield from iter_tensors(v, depth + 1)


def map_structure(obj: Any, fn: Callable[[Any], Any], depth: int = 0) -> Any:
    """Apply ``fn`` to every tensor (and module) inside nested containers, rebuilding the containers."""
    if isinstance(obj, (torch.Tensor, torch.nn.Module)):
        return fn(obj)
    if depth > 6:
        return obj
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):
        return type(obj)(*(map_structure(v, fn, depth + 1) for v in obj))
    if isinstance(obj, (list, tuple)):
        try:
            return type(obj)(map_structure(v, fn, depth + 1) for v in obj)
        except TypeError:
            return [map_structure(v, fn, depth + 1) for v in obj]
    if isinstance(obj, dict):
        new = {k: map_structure(v, fn, depth + 1) for k, v in obj.items()}
        try:
            return type(obj)(new)
        except Exception:
            return new
    if _is_record(obj):
        try:
            return dataclasses.replace(obj, **{f.name: map_structure(getattr(obj, f.name), fn, depth + 1)
                                               for f in dataclasses.fields(obj) if f.init})
        except Exception:
            return obj
    return obj


def bind_structure(old: Any, new: Any, env: dict[int, torch.Tensor], depth: int = 0) -> None:
    """Record ``env[id(old_tensor)] = new_tensor`` walking both structures in parallel."""
    if isinstance(old, torch.Tensor):
        if isinstance(new, torch.Tensor):
            env[id(old)] = new
        return
    if depth > 6:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        for k, v in old.items():
            if k in new:
                bind_structure(v, new[k], env, depth + 1)
    elif isinstance(old, (list, tuple)) and isinstance(new, (list, tuple)):
        for a, b in zip(old, new):
            bind_structure(a, b, env, depth + 1)
    elif _is_record(old) and _is_record(new):
        for name, v in _record_items(old):
            bind_structure(v, getattr(new, name, None), env, depth + 1)


def _has_trainable(module: torch.nn.Module) -> bool:
    return any(p.requires_grad for p in module.parameters())


@dataclass
class StepResult:
    """What one replayed step produced."""

    loss: torch.Tensor
    model_outputs: list[Any]
    model_inputs: list[torch.Tensor] = field(default_factory=list)
    input_axes: list[int | None] = field(default_factory=list)  # the batch dimension of each model input
    sample_inputs: list[torch.Tensor] = field(default_factory=list)  # a list batch's samples, one tensor each


class Step:
    """The replayable step. Subclasses: ``TapeStep`` (from the script) and ``entry.EntryStep``."""

    models: list[torch.nn.Module]
    optimizer: Any
    loss_call: LossCall | None
    batch_size: int
    sub_batch: int | None = None
    sub_start: int = 0  # where the sub-batch begins: a window whose targets vary when the first one's do not
    batch_source: str = "replay"
    batch_dim: int = 0
    batch_dim_source: str = "default"
    list_batch: bool = False  # the model takes a list with one tensor per sample (images of different sizes)
    whole_batch_reason: str | None = None  # why the overfitting checks fit the whole batch, when they could not cut it
    no_optimizer_reason: str | None = None  # why the training checks have no optimizer, when they have none
    other_models: list | tuple = ()  # trainable modules the step calls but does not train (a generator step's critic)
    role: str | None = None  # "generator" / "discriminator" in a GAN's two steps, else None

    def run(self, wb: Workbench, *, sub: bool = False, zero_inputs: bool = False, grad_inputs: bool = False,
            model_hook: Callable[[Any], None] | None = None, held_out: bool = False) -> StepResult:
        """Replay the step on the batch, its first ``sub_batch`` samples (``sub``) or the samples after those, at
        most as many (``held_out``: data the overfitting checks never train on)."""
        raise NotImplementedError

    def input_tensors(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def target_tensors(self) -> list[torch.Tensor]:
        raise NotImplementedError

    def loss_reduction(self) -> str | None:
        """How the recognised criterion reduces ('mean', 'sum', ...); None when the loss passed to backward() is
        not that criterion alone (a sum of several terms)."""
        return reduction_of(self.loss_call) if self.loss_call is not None else None

    def target_batch(self) -> torch.Tensor | None:
        """The first target tensor with its samples on dimension 0 (None when there is no such target)."""
        targets = self.target_tensors()
        if not targets or not isinstance(targets[0], torch.Tensor) or targets[0].dim() == 0:
            return None
        y = targets[0].detach()
        axis = batch_axis_of(y, self.batch_size, self.batch_dim)
        return y.movedim(axis, 0) if axis is not None else None

    def vary_sub_batch(self) -> None:
        """Centre the sub-batch on the first change of target when the first ``sub_batch`` samples all have the
        same target and the batch's targets vary (a batch sorted by label)."""
        k, y = self.sub_batch, self.target_batch()
        if not k or y is None or y.shape[0] != self.batch_size or not _constant(y[:k]) or _constant(y):
            return
        flat = y.reshape(self.batch_size, -1)
        change = next(i for i in range(k, self.batch_size) if not bool((flat[i] == flat[0]).all()))
        self.sub_start = max(0, min(change - k // 2, self.batch_size - k))


def _autocast(state: tuple):
    stack = contextlib.ExitStack()
    for device, dtype in state:
        stack.enter_context(torch.autocast(device_type=device, dtype=dtype))
    return stack


class TapeStep(Step):
    """A step rebuilt from the tape recorded up to the first backward()."""

    def __init__(self, cap: Captured, sub_batch: int = 8, batch_dim: int | None = None):
        self.cap = cap
        tape = cap.tape
        produced: dict[int, int] = {}  # tensor id -> index of the last entry that produced it
        bearing: set[int] = set()  # tensors that depend on a model output
        for i, e in enumerate(tape):
            ins = {id(t) for t in iter_tensors((e.args, e.kwargs))}
            if e.kind == "func" and not ins:
                continue  # factories (torch.tensor(...), randn): their values are kept as constants
            bear = (e.kind == "module" and _has_trainable(e.fn)) or bool(ins & bearing)
            if e.kind == "func" and getattr(e.fn, "__name__", "") in _DETACH_OPS:
                bear = False
            for t in iter_tensors(e.out):
                if isinstance(t, torch.nn.Parameter) or (id(t) in ins and id(t) not in produced):
                    continue  # in-place on an outside tensor: its captured value already has the effect
                produced[id(t)] = i
                if bear:
                    bearing.add(id(t))
        self.loss_tensor = self._strip_scaling(cap.loss, tape, produced, bearing)
        if id(self.loss_tensor) not in produced:
            raise CannotDrive(
                "the tensor passed to backward() was not computed from a module call the probe could see "
                "(is the model called through a custom autograd path?)"
            )
        # def-use walk from the loss back to the tensors that came from outside the step
        needed_entries: list[int] = []
        needed = {id(self.loss_tensor)}
        detached: set[int] = set()  # tensors detached into the step (they carry no gradient back)
        leaves: dict[int, torch.Tensor] = {}
        for i in range(len(tape) - 1, -1, -1):
            e = tape[i]
            ins = {id(t) for t in iter_tensors((e.args, e.kwargs))}
            if e.kind == "func" and not ins:
                continue
            outs = {id(t) for t in iter_tensors(e.out) if not isinstance(t, torch.nn.Parameter)}
            hit = outs & needed
            if not hit:
                continue
            if e.kind == "func" and getattr(e.fn, "__name__", "") in _DETACH_OPS:
                detached |= ins & bearing
                continue  # a detached tensor carries no gradient: it is data for this step (a GAN's fake images)
            needed_entries.append(i)
            needed -= hit - ins  # outputs of an in-place op still need their earlier producer
            needed |= ins
        for e in tape:
            for t in iter_tensors((e.args, e.kwargs)):
                if id(t) in needed and not isinstance(t, torch.nn.Parameter):
                    leaves[id(t)] = t
        self.entries: list[Entry] = [tape[i] for i in sorted(needed_entries)]
        models: list[torch.nn.Module] = []
        for e in self.entries:
            if e.kind == "module" and _has_trainable(e.fn) and all(e.fn is not m for m in models):
                models.append(e.fn)
        if not models:
            raise CannotDrive(
                "no module with trainable parameters was called on the way to the loss passed to backward()"
            )
        self.model_fns = {id(m) for m in models}
        self.other_models: list[torch.nn.Module] = []
        if len(models) > 1:
            owner = _common_owner(models, cap)
            trained = [m for m in models if holds(cap.stepped_optimizer, m)]
            if owner is None and trained and len(trained) < len(models):
                # a GAN's generator step: the optimizer that stepped trains one model; the others judge its output
                self.other_models = [m for m in models if all(m is not t for t in trained)]
                models = trained
                self.model_fns = {id(m) for m in trained}
                owner = models[0] if len(models) == 1 else _common_owner(models, cap)
            if owner is None:
                names = ", ".join(_describe(m, cap) for m in models)
                raise CannotDrive(
                    f"the loss depends on {len(models)} separately called models ({names}) that no single module "
                    "holds; the probe drives one model per step — pass --entry MODULE:FUNCTION returning the "
                    "model to probe"
                )
            models = [owner]  # e.g. a LightningModule whose training_step calls its encoder and decoder
        self.models = models
        self.role = gan_role(models, self.other_models, _producers(tape, produced, detached), cap)
        self.bearing = bearing
        self.model_entries = [e for e in self.entries if e.kind == "module" and id(e.fn) in self.model_fns]
        self.leaves = leaves
        self.loss_call = self._find_loss_call(cap.loss_calls)
        self._reduction = self._single_criterion(self.loss_call)
        self.target_ids = self._target_ids(cap.loss_calls)
        # data-side tensors at the model calls: the batch as the model sees it
        self.model_args = [t for e in self.model_entries for t in iter_tensors((e.args, e.kwargs))
                           if id(t) not in bearing]
        # targets handed to the model (nanoGPT's model(x, y)) are not inputs; the first tensor always is (an
        # autoencoder's input is also its target)
        self.protected = {id(t) for t in self.model_args[1:] if id(t) in self.target_ids}
        # recurrent hidden states handed in alongside the input are state, not data
        states = {id(t) for t in cap.state_tensors}
        self.state_ids = {id(t) for t in self.model_args[1:] if id(t) in states}
        inputs = self.input_tensors()
        if not inputs:
            raise CannotDrive("the model was called without tensor inputs; nothing to probe")
        self.batch_dim, self.batch_dim_source = _find_batch_dim(inputs[0], cap, batch_dim)
        first = inputs[0]
        self.batch_size = int(first.shape[self.batch_dim]) if first.dim() > self.batch_dim else 1
        samples = sample_list(self.model_entries[0], cap) if batch_dim is None else None
        self.sample_ids: set[int] = set()
        if samples is not None:
            self.list_batch, self.batch_size, self.batch_dim = True, len(samples), 0
            self.batch_dim_source = f"a list of {len(samples)} samples, one tensor each"
            self.sample_ids = {id(t) for t in samples}
        self.first_shape = list(first.shape)
        self.batch_source = "dataloader" if cap.dataloader_batches else "replay"
        self.optimizer = self._find_optimizer(models[0], cap.optimizers)
        self.sub_batch = None
        self._requested_sub = sub_batch

    # -- analysis helpers -------------------------------------------------------------------------------
    @staticmethod
    def _strip_scaling(loss, tape, produced, bearing):
        """Undo ``loss / accum`` and GradScaler's ``loss * scale``: the loss the user means."""
        for _ in range(8):
            i = produced.get(id(loss))
            if i is None:
                break
            e = tape[i]
            name = getattr(e.fn, "__name__", "")
            if e.kind != "func" or name not in _SCALE_OPS:
                break
            operands = [a for a in e.args if isinstance(a, torch.Tensor)]
            carrying = [a for a in operands if id(a) in bearing]
            if len(carrying) != 1 or carrying[0].numel() != 1:
                break
            loss = carrying[0]
        return loss

    def _find_loss_call(self, calls: list[LossCall]) -> LossCall | None:
        loss = self.loss_tensor
        for call in reversed(calls):
            if call.out is loss:
                return call
        reachable = _graph_nodes(loss)
        for call in reversed(calls):
            fn = getattr(call.out, "grad_fn", None)
            if fn is not None and fn in reachable:
                return call
        return None

    def _single_criterion(self, call: LossCall | None) -> str | None:
        """The criterion's reduction when the loss passed to backward() is its output (or the mean / sum of its
        unreduced output); None when other terms enter the loss."""
        if call is None:
            return None
        reduction = reduction_of(call)
        if call.out is self.loss_tensor:
            return reduction
        if reduction == "none":
            for e in self.entries:
                name = getattr(e.fn, "__name__", "")
                if e.kind == "func" and e.out is self.loss_tensor and name in ("mean", "sum") \
                        and len(e.args) == 1 and not e.kwargs and e.args[0] is call.out:
                    return name
        return None

    def loss_reduction(self) -> str | None:
        return self._reduction

    def _target_ids(self, calls: list[LossCall]) -> set[int]:
        ptrs = set()
        for call in calls:
            if isinstance(call.target, torch.Tensor):
                ptrs.add(_storage(call.target))
        ids = set()
        for e in self.entries:
            for t in iter_tensors((e.args, e.kwargs, e.out)):
                if _storage(t) in ptrs:
                    ids.add(id(t))
        return ids

    def _find_optimizer(self, model: torch.nn.Module, optimizers: list[Any]) -> Any | None:
        ids = {id(p) for p in model.parameters()}
        best, best_n = None, 0
        for opt in optimizers:
            n = sum(1 for g in opt.param_groups for p in g["params"] if id(p) in ids)
            if n > best_n:
                best, best_n = opt, n
        return best

    # -- running ----------------------------------------------------------------------------------------
    def input_tensors(self) -> list[torch.Tensor]:
        return [t for t in self.model_args if id(t) not in self.protected and id(t) not in self.state_ids]

    def batch_axis(self, t: torch.Tensor, n: int, original: Any = None) -> int | None:
        """Which dimension of ``t`` holds the ``n`` samples: hidden states at 1, tensors of the inputs' layout at
        the batch dimension, lower-rank companions (labels) at 0; None when none does."""
        if original is not None and id(original) in self.state_ids:
            return 1 if t.dim() > 1 and t.shape[1] == n else None
        if original is not None and id(original) in self.sample_ids:
            return None  # one sample of a list batch: the list is cut, not the tensor
        return batch_axis_of(t, n, self.batch_dim)

    def target_tensors(self) -> list[torch.Tensor]:
        if self.loss_call is not None and isinstance(self.loss_call.target, torch.Tensor):
            return [self.loss_call.target]
        return [t for t in self.leaves.values() if id(t) in self.target_ids]

    def choose_sub_batch(self, wb: Workbench) -> None:
        """Use the first few samples for the overfitting checks when the step replays with them."""
        k = min(self._requested_sub, self.batch_size)
        if k >= self.batch_size:
            return
        self.sub_batch = k
        try:
            with torch.no_grad():
                wb.reset()
                loss = self.run(wb, sub=True).loss
            if not torch.isfinite(loss.detach()).all():
                self.sub_batch = None
                self.whole_batch_reason = f"on its first {k} samples the step's loss is not finite"
            else:
                self.vary_sub_batch()
        except Exception as exc:
            self.sub_batch = None
            self.whole_batch_reason = (f"the step does not replay on its first {k} samples ({type(exc).__name__}: "
                                       f"{str(exc)[:160]}): its code depends on the whole batch (a "
                                       "torch.eye(2 * batch_size) built from the configured batch size, say)")
        finally:
            wb.reset()

    def run(self, wb: Workbench, *, sub: bool = False, zero_inputs: bool = False, grad_inputs: bool = False,
            model_hook: Callable[[Any], None] | None = None, held_out: bool = False) -> StepResult:
        env: dict[int, torch.Tensor] = {}
        n = self.batch_size
        k, start = held_out_part(self.sub_batch, n, self.sub_start) if held_out else \
            (self.sub_batch, self.sub_start) if sub and self.sub_batch else (None, 0)
        bearing = self.bearing
        outputs: list[Any] = []
        model_inputs: list[torch.Tensor] = []
        input_axes: list[int | None] = []
        sample_inputs: list[torch.Tensor] = []

        def sub_fn(x: Any) -> Any:
            if isinstance(x, torch.nn.Module):
                return wb.map(x)
            i = id(x)
            value = env[i] if i in env else wb.map(x)
            if k is not None and i not in bearing and isinstance(value, torch.Tensor) and value.dim() > 0 \
                    and not isinstance(value, torch.nn.Parameter):
                axis = self.batch_axis(value, n, x)
                if axis is not None:  # data-side tensors carrying the batch: keep k samples, contiguous as the
                    value = value.narrow(axis, start, k).contiguous()  # script's were (its .view() needs it)
            return value

        for e in self.entries:
            args = map_structure(e.args, sub_fn)
            kwargs = map_structure(e.kwargs, sub_fn)
            if e.kind == "module" and id(e.fn) in self.model_fns:
                samples = {id(v) for o, v in zip(iter_tensors(e.args[:1]), iter_tensors(args[:1]))
                           if id(o) in self.sample_ids}
                full = args
                if samples and k is not None:  # a list batch: keep k of its samples
                    args = (args[0][start:start + k], *args[1:])
                if zero_inputs or grad_inputs:
                    orig = list(iter_tensors((e.args, e.kwargs)))
                    targets = {id(new) for o, new in zip(orig, iter_tensors((full, kwargs)))
                               if id(o) in self.protected or id(o) in bearing or id(o) in self.state_ids}

                    def prep(t: Any) -> Any:
                        if not isinstance(t, torch.Tensor) or id(t) in targets:
                            return t
                        sample = id(t) in samples
                        if zero_inputs:
                            t = torch.zeros_like(t)
                        if grad_inputs and t.is_floating_point():
                            t = t.detach().clone().requires_grad_(True)
                            model_inputs.append(t)
                            input_axes.append(None if sample else batch_axis_of(t, k or n, self.batch_dim))
                            if sample:
                                sample_inputs.append(t)
                        return t

                    args = map_structure(args, prep)
                    kwargs = map_structure(kwargs, prep)
                fn = wb.map(e.fn)
                with _autocast(e.autocast):
                    out = fn(*args, **kwargs)
                outputs.append(out)
                if model_hook is not None:
                    model_hook(out)
            else:
                fn = wb.map(e.fn) if e.kind == "module" else e.fn
                with _autocast(e.autocast):
                    out = fn(*args, **kwargs)
            bind_structure(e.out, out, env)
        loss = env.get(id(self.loss_tensor))
        if loss is None:
            raise CannotDrive("replaying the step did not produce the loss again")
        return StepResult(loss=loss, model_outputs=outputs, model_inputs=model_inputs, input_axes=input_axes,
                          sample_inputs=sample_inputs)


def held_out_part(sub_batch: int | None, n: int, sub_start: int = 0) -> tuple[int, int]:
    """(size, start) of the held-out samples: those after the sub-batch (before it when it ends the batch), at
    most as many as it holds."""
    if not sub_batch or sub_batch >= n:
        raise CannotDrive("no sample is held out: the sub-batch is the whole batch")
    end = sub_start + sub_batch
    if end < n:
        return min(sub_batch, n - end), end
    return min(sub_batch, sub_start), sub_start - min(sub_batch, sub_start)


def _constant(y: torch.Tensor) -> bool:
    flat = y.reshape(-1)
    return flat.numel() < 2 or bool((flat == flat[0]).all())


def reduction_of(call: LossCall) -> str:
    """The ``reduction`` a loss function was called with (the legacy ``size_average`` / ``reduce`` included)."""
    kwargs = call.kwargs
    if kwargs.get("reduce") is False:
        return "none"
    if kwargs.get("size_average") is False:
        return "sum"
    reduction = kwargs.get("reduction")
    return reduction if isinstance(reduction, str) else "mean"


def _find_batch_dim(first: torch.Tensor, cap: Captured, override: int | None) -> tuple[int, str]:
    """The batch dimension of the model's first input, and what said so: ``--batch-dim``, the DataLoader's batch
    size, the layout at an RNN / attention module (``batch_first``), or dimension 0 by default."""
    if override is not None:
        if first.dim() <= override:
            raise CannotDrive(f"--batch-dim {override}, but the model's first input has shape {tuple(first.shape)}")
        return override, "--batch-dim"
    evidence = []
    if cap.dataloader_batch_size:
        evidence.append((cap.dataloader_batch_size, f"the DataLoader's batch size {cap.dataloader_batch_size}"))
    for name, batch_first, size in cap.sequence_calls:
        evidence.append((size, f"{name}(batch_first={batch_first})"))
    for size, why in evidence:
        dims = [d for d in range(first.dim()) if first.shape[d] == size]
        if len(dims) == 1:
            return dims[0], why
        if dims:
            return (0 if 0 in dims else dims[0]), why
    return 0, "default"


def _storage(t: torch.Tensor) -> int:
    try:
        return t.untyped_storage().data_ptr()
    except Exception:
        return -id(t)


def _graph_nodes(t: torch.Tensor, limit: int = 200000) -> set:
    seen = set()
    fn = getattr(t, "grad_fn", None)
    stack = [fn] if fn is not None else []
    while stack and len(seen) < limit:
        node = stack.pop()
        if node in seen:
            continue
        seen.add(node)
        for nxt, _ in getattr(node, "next_functions", ()):
            if nxt is not None and nxt not in seen:
                stack.append(nxt)
    return seen


def _common_owner(models: list[torch.nn.Module], cap: Captured) -> torch.nn.Module | None:
    """The smallest module the user built that holds all of ``models`` as submodules."""
    parent: dict[int, torch.nn.Module] = {}
    for m in list(cap.module_sites.keys()):
        for child in m.children():
            parent.setdefault(id(child), m)
    wanted = {id(m) for m in models}
    node = parent.get(id(models[0]))
    for _ in range(64):
        if node is None:
            return None
        if wanted <= {id(x) for x in node.modules()}:
            return node
        node = parent.get(id(node))
    return None


def _producers(tape: list[Entry], produced: dict[int, int], tensors: set[int]) -> list[torch.nn.Module]:
    """The trainable modules whose calls computed ``tensors`` (walking the tape back from them)."""
    found: list[torch.nn.Module] = []
    todo, seen = list(tensors), set()
    while todo and len(seen) < 100000:
        t = todo.pop()
        i = produced.get(t)
        if i is None or i in seen:
            continue
        seen.add(i)
        e = tape[i]
        if e.kind == "module" and _has_trainable(e.fn):
            if all(e.fn is not m for m in found):
                found.append(e.fn)
            continue
        todo.extend(id(x) for x in iter_tensors((e.args, e.kwargs)))
    return found


def _describe(module: torch.nn.Module, cap: Captured) -> str:
    site = cap.module_sites.get(module)
    where = f" built at line {site[1]}" if site else ""
    return f"{type(module).__name__}{where}"
