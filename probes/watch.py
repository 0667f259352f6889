"""The watch child: ``python -m torchsanity.probes.watch SCRIPT [ARGS...]``.

Runs the user's unmodified script with ``runpy`` under low-overhead hooks and appends what it records, as JSON
lines, to the metrics file named in ``TORCHSANITY_WATCH_CONFIG`` (JSON: ``metrics``, ``every``, ``steps``):

- per optimizer step (the first optimizer that steps): the loss passed to the last ``backward()`` before it, the
  learning rate of each parameter group, the global gradient norm (taken in the step pre-hook; on a stride, and
  null in between, where taking it every step would cost more than 1 % of a step) and the wall time since the
  previous step;
- every ``every`` steps (and at step 1): per parameter, the gradient norm, the weight norm and the update / weight
  ratio ``‖Δw‖ / ‖w‖`` of that step.

Values stay tensors until a flush (every half second), so a GPU run synchronises only then.
Non-finite numbers are written as the strings ``"nan"``, ``"inf"`` and ``"-inf"``.
"""

from __future__ import annotations

import json
import math
import os
import runpy
import signal
import sys
import time
from typing import Any

import torch

from . import WATCH_CONFIG_ENV as CONFIG_ENV
from . import WATCH_EVERY as DEFAULT_EVERY
from .child import is_oom, tie_to_guard, user_traceback
from .watch_verdicts import json_number as number

_FLUSH_SECONDS = 0.5
NORM_SHARE = 0.01  # the most of a step's time the per-step global gradient norm may take on average


class StopWatch(BaseException):
    """Raised into the script to end the run: the step budget is spent, or the parent asked to stop."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def _floats(tensors: list) -> list[float | None]:
    """0-d tensors (or None) to floats, one stack and one synchronisation per device and dtype."""
    out: list[float | None] = [None] * len(tensors)
    groups: dict[Any, list[int]] = {}
    for i, t in enumerate(tensors):
        if t is not None:
            groups.setdefault((t.device, t.dtype), []).append(i)
    for idx in groups.values():
        values = torch.stack([tensors[i].reshape(()) for i in idx]).double().tolist()
        for i, v in zip(idx, values):
            out[i] = v
    return out


def _total_norms(per_step: list) -> list[float | None]:
    """The global gradient norm of each step (None where it was not taken) from the vector of its per-parameter
    norms: one reduction for all the steps when the vectors match (the usual case)."""
    out: list[float | None] = [None] * len(per_step)
    present = [i for i, v in enumerate(per_step) if v is not None]
    if len({(per_step[i].shape, per_step[i].device) for i in present}) == 1:
        values = torch.linalg.vector_norm(torch.stack([per_step[i] for i in present]).double(), dim=1).tolist()
        for i, v in zip(present, values):
            out[i] = v
    else:
        for i in present:
            out[i] = float(torch.linalg.vector_norm(per_step[i].double()))
    return out


class WatchRecorder:
    """Optimizer-step and ``backward()`` hooks that record the run into a JSON-lines file."""

    def __init__(self, out, every: int = DEFAULT_EVERY, max_steps: int | None = None):
        self.out = out
        self.every = max(1, int(every))
        self.max_steps = max_steps
        self.step = 0
        self.optimizer = None  # the first optimizer that steps
        self.others: set[int] = set()  # other optimizers that stepped (not watched)
        self.params: list[torch.Tensor] = []
        self.loss = None  # the last loss passed to backward(), detached
        self.backwards = 0
        self.pending: list[tuple] = []  # (step, loss, grad norms, lr, seconds, backwards)
        self.pending_samples: list[tuple] = []
        self.grad_norms = None
        self.norm_stride = 1  # global gradient norm every step, unless that costs more than NORM_SHARE of a step
        self.norm_seconds: float | None = None
        self.norm_share = 0.0
        self.before = None  # weights before a sampled step
        self.sample_grads = None
        self.last_time = None
        self.last_flush = time.perf_counter()
        self.modules: list = []  # modules called before the first step (to name parameters)
        self.schedulers: list[dict] = []
        self._handles: list = []
        self._saved: list[tuple] = []
        self._forward = None

    # -- hooks -------------------------------------------------------------------------------------------------
    def install(self) -> None:
        """Patch ``torch.autograd.backward`` (``Tensor.backward`` calls it), the scheduler base class, and add the
        global optimizer step hooks and a forward pre-hook that lives until the first step."""
        from torch.optim import lr_scheduler
        from torch.optim.optimizer import (
            register_optimizer_step_post_hook,
            register_optimizer_step_pre_hook,
        )

        original_backward = torch.autograd.backward
        recorder = self

        def backward(tensors, *args, **kwargs):
            t = tensors[0] if isinstance(tensors, (list, tuple)) and tensors else tensors
            if isinstance(t, torch.Tensor) and t.numel() == 1:
                recorder.loss = t.detach()
            recorder.backwards += 1
            return original_backward(tensors, *args, **kwargs)

        original_init = lr_scheduler.LRScheduler.__init__

        def scheduler_init(sched, optimizer, *args, **kwargs):
            recorder.schedulers.append({"type": type(sched).__name__, "optimizer": optimizer})
            return original_init(sched, optimizer, *args, **kwargs)

        self._saved = [(torch.autograd, "backward", original_backward),
                       (lr_scheduler.LRScheduler, "__init__", original_init)]
        torch.autograd.backward = backward
        lr_scheduler.LRScheduler.__init__ = scheduler_init
        self._handles = [register_optimizer_step_pre_hook(self.pre_step),
                         register_optimizer_step_post_hook(self.post_step)]
        self._forward = torch.nn.modules.module.register_module_forward_pre_hook(self.on_forward)

    def uninstall(self) -> None:
        for owner, name, value in self._saved:
            setattr(owner, name, value)
        for handle in self._handles:
            handle.remove()
        self._drop_forward_hook()

    def _drop_forward_hook(self) -> None:
        if self._forward is not None:
            self._forward.remove()
            self._forward = None

    def on_forward(self, module, _inputs) -> None:
        if not self.modules or all(m is not module for m in self.modules):
            self.modules.append(module)

    def pre_step(self, optimizer, _args, _kwargs) -> None:
        if self.optimizer is None:
            self.adopt(optimizer)
        if optimizer is not self.optimizer:
            self.others.add(id(optimizer))
            return
        sampled = self.sampled(self.step + 1)
        if not sampled and (self.step + 1) % self.norm_stride:
            return  # the global gradient norm is thinned out: it would cost more than its share of a step
        started = time.perf_counter()
        grads = [p.grad for p in self.params]
        present = [g for g in grads if g is not None]
        norms = torch._foreach_norm(present) if present else []
        self.grad_norms = torch.stack(norms) if norms else torch.zeros(1)
        self.norm_seconds = time.perf_counter() - started
        if sampled:
            self.sample_grads = _spread(grads, norms)
            with torch.no_grad():
                self.before = [p.detach().clone() for p in self.params]

    def post_step(self, optimizer, _args, _kwargs) -> None:
        if optimizer is not self.optimizer:
            return
        self.step += 1
        now = time.perf_counter()
        seconds = None if self.last_time is None else now - self.last_time
        self.last_time = now
        lr = [_lr(g) for g in optimizer.param_groups]
        self.pending.append((self.step, self.loss, self.grad_norms, lr, seconds, self.backwards))
        self.loss, self.backwards, self.grad_norms = None, 0, None
        if self.before is not None:
            with torch.no_grad():
                weights = torch._foreach_norm([p.detach() for p in self.params])
                updates = torch._foreach_norm(torch._foreach_sub([p.detach() for p in self.params], self.before))
            self.pending_samples.append((self.step, self.sample_grads, weights, updates))
            self.before = self.sample_grads = None
        if seconds is not None and self.norm_seconds is not None:
            self.norm_share = 0.9 * self.norm_share + 0.1 * self.norm_seconds / max(seconds, 1e-9)
            self.norm_seconds = None
        if self.sampled(self.step):
            # every K steps: the norm's stride keeps its cost near NORM_SHARE of a step, at most K
            self.norm_stride = min(self.every, max(1, math.ceil(self.norm_share / NORM_SHARE)))
        if now - self.last_flush > _FLUSH_SECONDS or len(self.pending) >= 4096:
            self.flush()
        if self.max_steps is not None and self.step >= self.max_steps:
            raise StopWatch("steps")

    def sampled(self, step: int) -> bool:
        return step == 1 or step % self.every == 0

    def adopt(self, optimizer) -> None:
        """The first optimizer that steps is the one watched; its parameters are named from the modules seen."""
        self.optimizer = optimizer
        self.params = [p for g in optimizer.param_groups for p in g["params"]]
        names = {}
        for module in self.modules:
            for name, p in module.named_parameters():
                names.setdefault(id(p), name)
        self._drop_forward_hook()
        self.modules = []
        layers = [names.get(id(p), f"param{i}{tuple(p.shape)}") for i, p in enumerate(self.params)]
        self.write({"kind": "layers", "names": layers, "ndim": [p.dim() for p in self.params],
                    "numel": [p.numel() for p in self.params], "optimizer": type(optimizer).__name__})

    # -- output ------------------------------------------------------------------------------------------------
    def write(self, record: dict) -> None:
        self.out.write(json.dumps(record) + "\n")

    def flush(self) -> None:
        """Turn the pending tensors into numbers (one synchronisation) and write them out."""
        self.last_flush = time.perf_counter()
        if self.pending:
            losses = _floats([p[1] for p in self.pending])
            norms = _total_norms([p[2] for p in self.pending])
            self.out.write("".join(
                f'{{"kind": "step", "step": {step}, "loss": {_literal(loss)}, "grad_norm": {_literal(norm)}, '
                f'"lr": [{", ".join(_literal(x) for x in lr)}], "seconds": {_literal(seconds)}, '
                f'"backwards": {backwards}}}\n'
                for (step, _, _, lr, seconds, backwards), loss, norm in zip(self.pending, losses, norms)))
            self.pending = []
        for step, grads, weights, updates in self.pending_samples:
            g, w, u = _floats(grads), _floats(list(weights)), _floats(list(updates))
            ratio = [None if a is None or b is None or b == 0 else a / b for a, b in zip(u, w)]
            self.write({"kind": "sample", "step": step, "grad_norm": [number(x) for x in g],
                        "weight_norm": [number(x) for x in w], "update_ratio": [number(x) for x in ratio]})
        self.pending_samples = []
        if self.schedulers:
            for s in self.schedulers:
                self.write({"kind": "scheduler", "type": s["type"],
                            "watched": self.optimizer is not None and s["optimizer"] is self.optimizer})
            self.schedulers = []
        self.out.flush()


def _literal(value: float | None) -> str:
    """A number as a JSON literal, fast (a step line is written for every step); non-finite as a string."""
    if value is None:
        return "null"
    return repr(float(value)) if math.isfinite(value) else json.dumps(number(value))


def _lr(group: dict) -> float | None:
    lr = group.get("lr")
    try:
        return float(lr)
    except (TypeError, ValueError):
        return None


def _spread(grads: list, norms: list) -> list:
    """The norms of the present gradients, placed back among the missing ones."""
    it = iter(norms)
    return [None if g is None else next(it) for g in grads]


def run(cfg: dict, argv: list[str]) -> int:
    """Run the script under the recorder; the metrics file gets a "start" and an "end" record around it."""
    script = os.path.abspath(argv[0])
    out = open(cfg["metrics"], "a", encoding="utf-8")
    recorder = WatchRecorder(out, every=int(cfg.get("every") or DEFAULT_EVERY), max_steps=cfg.get("steps"))
    recorder.write({"kind": "start", "script": script, "argv": argv[1:], "pid": os.getpid(),
                    "torch": torch.__version__, "every": recorder.every, "time": time.time()})
    out.flush()
    me = os.getpid()

    def on_term(signum, _frame):
        if os.getpid() != me:  # a forked worker (DataLoader): end as the signal asks
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise StopWatch(signal.Signals(signum).name)

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_term)
    sys.argv = [script] + argv[1:]
    sys.path[0] = os.path.dirname(script)
    end: dict[str, Any] = {"kind": "end", "reason": "finished"}
    code = 0
    recorder.install()
    try:
        runpy.run_path(script, run_name="__main__")
    except StopWatch as exc:
        end["reason"] = exc.reason
    except SystemExit as exc:
        end["reason"] = "exit"
        end["exit_code"] = exc.code if isinstance(exc.code, int) or exc.code is None else str(exc.code)
    except KeyboardInterrupt:
        end["reason"] = "SIGINT"
    except BaseException as exc:  # the script's own exception
        end["reason"] = "error"
        end["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": user_traceback(exc),
                        "oom": is_oom(exc)}
        code = 2
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, signal.SIG_IGN)  # the record is being finished
        recorder.uninstall()
    recorder.flush()
    end["steps"] = recorder.step
    end["other_optimizers"] = len(recorder.others)
    recorder.write(end)
    out.flush()
    out.close()
    return code


def main(argv: list[str] | None = None) -> int:
    tie_to_guard()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    cfg = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    if not argv or not cfg.get("metrics"):
        print(f"usage: {CONFIG_ENV}='{{\"metrics\": FILE}}' python -m torchsanity.probes.watch SCRIPT [ARGS...]",
              file=sys.stderr)
        return 2
    return run(cfg, argv)


if __name__ == "__main__":
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)  # threads or worker processes the script started must not keep us alive
