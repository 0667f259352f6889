"""The watch recorder: hooks on ``backward()``, the optimizer's step, the DataLoader, ``Module.train`` and the loss
functions, that record a run into the JSON-lines format described in ``probes/watch.py``."""

from __future__ import annotations

import functools
import json
import math
import time
from typing import Any

import torch
from torch import nn

from . import WATCH_EVERY as DEFAULT_EVERY
from .watch_layers import (
    ActivationSampler,
    filters_record,
    find_nonfinite,
    first_conv,
    stats_record,
    watched_modules,
)
from .watch_numbers import (
    cuda_memory,
    floats,
    group_lr,
    lr_floats,
    spread,
    step_line,
    total_norms,
)
from .watch_ranks import RankFollower, checksums
from .watch_series import json_number as number

_FLUSH_SECONDS = 0.5
NORM_SHARE = 0.01  # the most of a step's time the per-step global gradient norm may take on average
FILTER_EVERY = 20  # filters every FILTER_EVERY x every steps
LOSS_FUNCTIONS = ("cross_entropy", "nll_loss", "binary_cross_entropy", "binary_cross_entropy_with_logits",
                  "mse_loss", "l1_loss", "smooth_l1_loss", "huber_loss", "kl_div", "poisson_nll_loss",
                  "gaussian_nll_loss", "ctc_loss", "margin_ranking_loss", "hinge_embedding_loss", "soft_margin_loss",
                  "multilabel_soft_margin_loss", "multilabel_margin_loss", "cosine_embedding_loss",
                  "multi_margin_loss", "triplet_margin_loss")


class StopWatch(BaseException):
    """Raised into the script to end the run: the step or epoch budget is spent, or the parent asked to stop."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _batch_size(batch) -> int | None:
    """The first dimension of the first tensor in a batch (tensor, sequence or mapping)."""
    for _ in range(4):
        if isinstance(batch, torch.Tensor):
            return int(batch.shape[0]) if batch.dim() else None
        if isinstance(batch, (list, tuple)) and batch:
            batch = batch[0]
        elif isinstance(batch, dict) and batch:
            batch = next(iter(batch.values()))
        else:
            return None
    return None


class WatchRecorder:
    """Records one run; ``install`` puts the hooks in place, ``finish`` writes what is left."""

    def __init__(self, out, every: int = DEFAULT_EVERY, max_steps: int | None = None,
                 max_epochs: int | None = None, rank: int = 0, world: int = 1, follower: RankFollower | None = None):
        self.out = out
        self.every = max(1, int(every))
        self.max_steps, self.max_epochs = max_steps, max_epochs
        self.rank, self.world, self.follower = rank, world, follower
        self.step = 0
        self.optimizer = None  # the first optimizer that steps
        self.others: set[int] = set()  # other optimizers that stepped (not watched)
        self.params: list[torch.Tensor] = []
        self.param_ids: set[int] = set()
        self.names: list[str] = []
        self.roots: list[nn.Module] = []
        self.loss = None  # the last loss passed to backward(): a float on a CPU, else detached
        self.backwards = 0
        self.pending: list[tuple] = []
        self.pending_samples: list[tuple] = []
        self.records: list[dict] = []  # other records, written at the next flush
        self.grad_norms = None
        self.norm_stride = 1  # global gradient norm every step, unless that costs more than NORM_SHARE of a step
        self.norm_seconds: float | None = None
        self.norm_share = 0.0
        self.before = None  # weights before a sampled step
        self.sample_grads = None
        self.last_time = None
        self.last_flush = time.perf_counter()
        self.modules: list = []  # modules called before the first step (to find the model and name parameters)
        self.schedulers: list[dict] = []
        self.sched_stepped: dict[int, Any] = {}  # schedulers whose step() the script called, by id
        self.stepped: list = []  # of those, the ones not written yet
        self._sched_init = 0
        # data loading
        self.data_wait = 0.0
        self.saw_loader = False
        self.batch_samples: int | None = None
        self.train_loader: int | None = None
        self.last_loader: int | None = None
        self.passes: dict[int, list] = {}  # loader id -> [current iterator, finished]
        self.completed: dict[int, int] = {}  # loader id -> passes completed
        # evaluation phases
        self.phase: dict | None = None
        self.paused = 0.0  # seconds spent in evaluation since the previous step
        self.train_fns: list[str] = []
        self._depth = 0
        # layers
        self.sampler = ActivationSampler()
        self.act_modules: list = []
        self.pending_acts: list[tuple[int, list]] = []
        self.conv: int | None = None
        self.inputs: tuple | None = None  # the last training forward's (args, kwargs) of the model
        self.nonfinite_done = False
        self._handles: list = []
        self._saved: list[tuple] = []
        self._forward = None

    # -- installing ------------------------------------------------------------------------------------------
    def install(self) -> None:
        """Patch ``torch.autograd.backward``, the scheduler base class, the DataLoader, ``Module.train`` and the
        functional losses; add the global optimizer step hooks and a forward pre-hook until the first step."""
        from torch.optim import lr_scheduler
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )
        from torch.utils.data import dataloader

        rec = self
        original_backward = torch.autograd.backward

        def backward(tensors, *args, **kwargs):
            t = tensors[0] if isinstance(tensors, (list, tuple)) and tensors else tensors
            if isinstance(t, torch.Tensor) and t.numel() == 1:
                if t.device.type == "cpu" and t.is_floating_point():  # a float at once: nothing left to convert
                    rec.loss = float(t.detach())
                    if not rec.nonfinite_done and not math.isfinite(rec.loss):
                        rec.hunt("loss", rec.step + 1)
                else:
                    rec.loss = t.detach()
            rec.backwards += 1
            return original_backward(tensors, *args, **kwargs)

        original_sched = lr_scheduler.LRScheduler.__init__
        original_sched_step = lr_scheduler.LRScheduler.step

        def scheduler_init(sched, optimizer, *args, **kwargs):
            rec.schedulers.append({"type": type(sched).__name__, "optimizer": optimizer})
            rec._sched_init += 1  # the constructor's own first step() is not the script's
            try:
                return original_sched(sched, optimizer, *args, **kwargs)
            finally:
                rec._sched_init -= 1

        def scheduler_step(sched, *args, **kwargs):
            if not rec._sched_init and id(sched) not in rec.sched_stepped:
                rec.sched_stepped[id(sched)] = sched
                rec.stepped.append(sched)
            return original_sched_step(sched, *args, **kwargs)

        original_iter = dataloader.DataLoader.__iter__
        original_next = dataloader._BaseDataLoaderIter.__next__

        def loader_iter(loader):
            rec.on_pass(loader)
            it = original_iter(loader)
            rec.passes[id(loader)] = [it, False]
            try:
                it._torchsanity_loader = id(loader)
            except AttributeError:
                pass
            return it

        def loader_next(it):
            started = time.perf_counter()
            try:
                batch = original_next(it)
            except StopIteration:
                rec.on_exhausted(it)
                raise
            rec.on_batch(getattr(it, "_torchsanity_loader", None), batch, time.perf_counter() - started)
            return batch

        original_train = nn.Module.train

        def train(module, mode=True):
            rec._depth += 1
            try:
                result = original_train(module, mode)
            finally:
                rec._depth -= 1
            if rec._depth == 0:
                rec.on_mode(module, mode)
            return result

        functional = torch.nn.functional
        self._saved = [(torch.autograd, "backward", original_backward),
                       (lr_scheduler.LRScheduler, "__init__", original_sched),
                       (lr_scheduler.LRScheduler, "step", original_sched_step),
                       (dataloader.DataLoader, "__iter__", original_iter),
                       (dataloader._BaseDataLoaderIter, "__next__", original_next),
                       (nn.Module, "train", original_train)]
        self._saved += [(functional, name, getattr(functional, name)) for name in LOSS_FUNCTIONS
                        if hasattr(functional, name)]
        torch.autograd.backward = backward
        lr_scheduler.LRScheduler.__init__ = scheduler_init
        lr_scheduler.LRScheduler.step = scheduler_step
        dataloader.DataLoader.__iter__ = loader_iter
        dataloader._BaseDataLoaderIter.__next__ = loader_next
        nn.Module.train = train
        for name in LOSS_FUNCTIONS:
            if hasattr(functional, name):
                setattr(functional, name, self._wrap_loss(name, getattr(functional, name)))
        self._handles = [register_optimizer_step_pre_hook(self.pre_step),
                         register_optimizer_step_post_hook(self.post_step)]
        if self.optimizer is None:
            self._forward = torch.nn.modules.module.register_module_forward_pre_hook(self.on_forward)
        else:  # installed again after a pause (the overhead benchmark): the model is known
            self._handles += [root.register_forward_pre_hook(self.on_root_forward, with_kwargs=True)
                              for root in self.roots]

    def _wrap_loss(self, name: str, fn):
        rec = self

        @functools.wraps(fn)
        def loss_fn(*args, **kwargs):
            out = fn(*args, **kwargs)
            if rec.phase is not None:
                if not torch.is_grad_enabled():
                    rec.on_eval_loss(name, out, args, kwargs)
            elif name not in rec.train_fns and torch.is_grad_enabled():
                rec.train_fns.append(name)
            return out
        # TorchScript compiles the original function instead of this wrapper (the marks torch.jit gives its own
        # script-if-tracing wrappers): a scripted loss module keeps working under the watch
        setattr(loss_fn, "__original_fn", fn)
        setattr(loss_fn, "__script_if_tracing_wrapper", True)
        return loss_fn

    def uninstall(self) -> None:
        for owner, name, value in self._saved:
            setattr(owner, name, value)
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self.sampler.disarm()
        self._drop_forward_hook()

    def _drop_forward_hook(self) -> None:
        if self._forward is not None:
            self._forward.remove()
            self._forward = None

    # -- model and data ----------------------------------------------------------------------------------------
    def on_forward(self, module, args) -> None:
        """Until the first step: every module called (the first is taken for the model, its inputs kept)."""
        if not self.modules or all(m is not module for m in self.modules):
            self.modules.append(module)
        if module is self.modules[0] and module.training and torch.is_grad_enabled():
            self.inputs = (args, {})

    def on_root_forward(self, module, args, kwargs) -> None:
        if module.training and torch.is_grad_enabled():
            self.inputs = (args, kwargs)

    def on_pass(self, loader) -> None:
        """A new pass over a loader begins: count the previous one if it went at least half way."""
        lid = id(loader)
        prev = self.passes.get(lid)
        if prev is not None and not prev[1]:
            done = getattr(prev[0], "_num_yielded", 0)
            try:
                length = len(loader)
            except TypeError:
                length = None
            if done and (length is None or done >= max(1, length // 2)):
                prev[1] = True
                self.completed[lid] = self.completed.get(lid, 0) + 1
        if lid == self.train_loader and self.max_epochs is not None and \
                self.completed.get(lid, 0) >= self.max_epochs and self.phase is None:
            raise StopWatch("epochs")

    def on_exhausted(self, it) -> None:
        lid = getattr(it, "_torchsanity_loader", None)
        entry = self.passes.get(lid)
        if entry is not None and entry[0] is it and not entry[1]:
            entry[1] = True
            self.completed[lid] = self.completed.get(lid, 0) + 1

    def on_batch(self, lid, batch, seconds: float) -> None:
        if self.phase is not None:
            return  # an evaluation loader
        if self.train_loader is not None and lid != self.train_loader:
            return
        self.saw_loader = True
        self.last_loader = lid
        self.data_wait += seconds
        self.batch_samples = _batch_size(batch)

    def _is_model(self, module) -> bool:
        first = next(module.parameters(), None)
        if first is None:
            return False
        return id(first) in self.param_ids if self.param_ids else True

    def on_mode(self, module, mode: bool) -> None:
        """``train()`` / ``eval()`` on the model: an evaluation phase starts or ends."""
        if not mode and self.phase is None and self._is_model(module):
            self.phase = {"step": self.step, "started": time.perf_counter(), "sums": {}, "counts": {},
                          "batches": 0}
        elif mode and self.phase is not None and self._is_model(module):
            self.end_phase()

    def on_eval_loss(self, name: str, out, args, kwargs) -> None:
        """A loss computed under no-grad in an evaluation phase: summed per sample (mean-reduced losses weighted
        by their batch size, sum-reduced ones as they are)."""
        if not isinstance(out, torch.Tensor) or out.numel() != 1:
            return
        first = args[0] if args else kwargs.get("input")
        n = int(first.shape[0]) if isinstance(first, torch.Tensor) and first.dim() else 1
        total = out.detach().double().reshape(())
        phase = self.phase
        phase["sums"][name] = phase["sums"].get(name, 0.0) + (total if kwargs.get("reduction") == "sum" else total * n)
        phase["counts"][name] = phase["counts"].get(name, 0) + n
        phase["batches"] += 1

    def end_phase(self) -> None:
        phase, self.phase = self.phase, None
        seconds = time.perf_counter() - phase["started"]
        self.paused += seconds
        if not phase["counts"]:
            return
        losses = {k: float(phase["sums"][k]) / phase["counts"][k] for k in phase["sums"]}
        fn = next((f for f in self.train_fns if f in losses), None)
        if fn is None and len(losses) == 1:
            fn = next(iter(losses))
        self.records.append({"kind": "eval", "step": phase["step"], "loss": number(losses[fn]) if fn else None,
                             "fn": fn, "losses": {k: number(v) for k, v in losses.items()},
                             "batches": phase["batches"], "samples": phase["counts"].get(fn) if fn else None,
                             "seconds": round(seconds, 6)})

    def hunt(self, where: str, step: int, layer: str | None = None) -> None:
        """The first non-finite loss or gradient: name the module (or parameter) it came from, once."""
        self.nonfinite_done = True
        if where == "grad":
            module, kind, detail = layer, None, (
                f"the loss is finite but the gradient of {layer} is not (it is the parameter nearest the output "
                "whose gradient is NaN/inf): look for sqrt, pow or division at 0 in its backward")
        else:
            roots = self.roots or self.modules[:1]
            args, kwargs = self.inputs or ((), {})
            module, kind, detail = find_nonfinite(roots, args, kwargs) if self.inputs else (
                None, None, "no forward pass of the model was seen")
        self.records.append({"kind": "nonfinite", "step": step, "where": where, "module": module,
                             "module_type": kind, "detail": detail})

    # -- the optimizer step ------------------------------------------------------------------------------------
    def pre_step(self, optimizer, _args, _kwargs) -> None:
        if self.optimizer is None:
            self.adopt(optimizer)
        if optimizer is not self.optimizer:
            self.others.add(id(optimizer))
            return
        if self.phase is not None:
            self.end_phase()
        if self.sampler.handles:
            self.pending_acts.append((self.step + 1, self.sampler.disarm()))
        sampled = self.sampled(self.step + 1)
        if not sampled and (self.step + 1) % self.norm_stride:
            return  # the global gradient norm is thinned out: it would cost more than its share of a step
        started = time.perf_counter()
        grads = [p.grad for p in self.params]
        present = [g for g in grads if g is not None]
        norms = torch._foreach_norm(present) if present else []
        if norms and norms[0].device.type == "cpu":
            # on a CPU the global norm is a Python float at once: one float per norm (cheaper than a stack and a
            # tolist, two more dispatched ops), no further tensor op
            values = [float(n) for n in norms]
            self.grad_norms = math.sqrt(math.fsum(v * v for v in values))
            if not self.nonfinite_done and not math.isfinite(self.grad_norms):
                bad = [i for i, n in enumerate(spread(grads, values)) if n is not None and not math.isfinite(n)]
                if (self.loss is None or math.isfinite(float(self.loss))) and bad:
                    self.hunt("grad", self.step + 1, self.names[bad[-1]])
        else:  # on a GPU the vector stays there until a flush (no synchronisation)
            self.grad_norms = torch.stack(norms) if norms else torch.zeros(1)
        self.norm_seconds = time.perf_counter() - started
        if sampled:
            self.sample_grads = spread(grads, norms)
            with torch.no_grad():
                self.before = [p.detach().clone() for p in self.params]

    def post_step(self, optimizer, _args, _kwargs) -> None:
        if optimizer is not self.optimizer:
            return
        self.step += 1
        now = time.perf_counter()
        seconds = None if self.last_time is None else now - self.last_time
        self.last_time = now
        lr = [group_lr(g) for g in optimizer.param_groups]
        samples = self.batch_samples if self.saw_loader else _batch_size(self.inputs[0] if self.inputs else None)
        epoch = self.completed.get(self.train_loader, 0) if self.train_loader is not None else None
        data = self.data_wait if self.saw_loader else None
        self.pending.append((self.step, self.loss, self.grad_norms, lr, seconds, self.backwards, data, samples,
                             epoch, self.paused))
        self.loss, self.backwards, self.grad_norms, self.data_wait, self.paused = None, 0, None, 0.0, 0.0
        if self.before is not None:
            with torch.no_grad():
                current = [p.detach() for p in self.params]
                weights = torch._foreach_norm(current)
                updates = torch._foreach_norm(torch._foreach_sub(current, self.before))
            memory = cuda_memory(self.params)
            sums = checksums(self.params) if self.world > 1 else None
            self.pending_samples.append((self.step, self.sample_grads, weights, updates, memory, sums))
            self.before = self.sample_grads = None
        if seconds is not None and self.norm_seconds is not None:
            self.norm_share = 0.9 * self.norm_share + 0.1 * self.norm_seconds / max(seconds, 1e-9)
            self.norm_seconds = None
        if self.sampled(self.step):
            # every K steps: the norm's stride keeps its cost near NORM_SHARE of a step, at most K
            self.norm_stride = min(self.every, max(1, math.ceil(self.norm_share / NORM_SHARE)))
        if self.conv is not None and self.step % (FILTER_EVERY * self.every) == 0:
            self.records.append(filters_record(self.step, self.names[self.conv], self.params[self.conv]))
        if self.act_modules and (self.sampled(self.step + 1) or self.step == 1):  # step 2: the baseline
            self.sampler.arm(self.act_modules)
        # a flush turns tensors into numbers: on a GPU that synchronises, so there only on sampled steps
        on_gpu = self.params and self.params[0].device.type != "cpu"
        if (now - self.last_flush > _FLUSH_SECONDS and (not on_gpu or self.sampled(self.step))) or \
                len(self.pending) >= 4096:
            self.flush()
        if self.max_steps is not None and self.step >= self.max_steps:
            raise StopWatch("steps")

    def sampled(self, step: int) -> bool:
        return step == 1 or step % self.every == 0

    def adopt(self, optimizer) -> None:
        """The first optimizer that steps is the one watched: find the model among the modules seen (the first
        one called that holds its parameters, and any other such module outside it), name the parameters."""
        self.optimizer = optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        self.param_ids = {id(p) for p in self.params}
        covered: set[int] = set()
        for module in self.modules:
            if id(module) not in covered and self._is_model(module):
                self.roots.append(module)
                covered.update(id(m) for m in module.modules())
        names: dict[int, str] = {}
        for module in self.roots + self.modules:
            for name, p in module.named_parameters():
                names.setdefault(id(p), name)
        self._drop_forward_hook()
        self.modules = []
        self.names = [names.get(id(p), f"param{i}{tuple(p.shape)}") for i, p in enumerate(self.params)]
        self.train_loader = self.last_loader
        self.act_modules = watched_modules(self.roots)
        self._handles += [root.register_forward_pre_hook(self.on_root_forward, with_kwargs=True)
                          for root in self.roots]
        self.write({"kind": "layers", "names": self.names, "ndim": [p.dim() for p in self.params],
                    "numel": [p.numel() for p in self.params], "optimizer": type(optimizer).__name__})
        self.conv = first_conv(self.names, self.params)
        if self.conv is not None:
            self.write(filters_record(0, self.names[self.conv], self.params[self.conv]))

    # -- output ------------------------------------------------------------------------------------------------
    def write(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        """Turn the pending tensors into numbers (one synchronisation) and write them out."""
        self.last_flush = time.perf_counter()
        if self.pending:
            pending, self.pending = self.pending, []
            losses = floats([p[1] for p in pending])
            norms = total_norms([p[2] for p in pending])
            lrs = lr_floats([p[3] for p in pending])
            self.out.write("".join(step_line(p, loss, norm, lr)
                                   for p, loss, norm, lr in zip(pending, losses, norms, lrs)))
            if not self.nonfinite_done:  # a GPU run: found here, within a flush of when it happened
                bad = next((p[0] for p, x in zip(pending, losses) if x is not None and not math.isfinite(x)), None)
                if bad is not None:
                    self.hunt("loss", bad)
        for step, grads, weights, updates, memory, sums in self.pending_samples:
            g, w, u = floats(grads), floats(list(weights)), floats(list(updates))
            ratio = [None if a is None or b is None or b == 0 else a / b for a, b in zip(u, w)]
            self.write({"kind": "sample", "step": step, "grad_norm": [number(x) for x in g],
                        "weight_norm": [number(x) for x in w], "update_ratio": [number(x) for x in ratio],
                        "cuda_memory": memory})
            if sums is not None:
                self.write({"kind": "checksum", "step": step, "rank": self.rank, "world_size": self.world,
                            "values": [number(x) for x in sums.tolist()], "norms": [number(x) for x in w]})
        self.pending_samples = []
        for step, taken in self.pending_acts:
            self.write(stats_record(step, taken))
        self.pending_acts = []
        for s in self.schedulers:
            self.write({"kind": "scheduler", "type": s["type"],
                        "watched": self.optimizer is not None and s["optimizer"] is self.optimizer})
        self.schedulers = []
        for sched in self.stepped:
            self.write({"kind": "scheduler_stepped", "type": type(sched).__name__,
                        "watched": self.optimizer is not None and sched.optimizer is self.optimizer})
        self.stepped = []
        for record in self.records:
            self.write(record)
        self.records = []
        if self.follower is not None:
            for line in self.follower.read():
                self.out.write(line + "\n")
        self.out.flush()

    def finish(self) -> None:
        """At the end of the run: close an open evaluation phase, the last filters, and flush."""
        if self.phase is not None:
            self.end_phase()
        if self.sampler.handles:
            self.sampler.disarm()
        if self.conv is not None and self.step % (FILTER_EVERY * self.every):
            self.records.append(filters_record(self.step, self.names[self.conv], self.params[self.conv]))
        self.flush()
        if self.follower is not None:  # the other ranks' last checksums
            deadline = time.monotonic() + 2.0
            while not self.follower.all_ended() and time.monotonic() < deadline:
                time.sleep(0.05)
                self.flush()
            self.flush()
