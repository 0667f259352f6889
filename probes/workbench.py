"""Copies of the user's model and optimizer that the checks may train, restorable to the captured state.

Deep copies where possible (the checks never touch the user's objects); where a model cannot be deep-copied,
the originals are used and restored from a snapshot after every check. RNG states are snapshotted alongside.
"""

from __future__ import annotations

import copy
from typing import Any

import torch


def unwrap(module: torch.nn.Module) -> torch.nn.Module:
    """The plain module inside DistributedDataParallel / DataParallel / torch.compile wrappers."""
    for _ in range(4):
        inner = getattr(module, "_orig_mod", None)
        if isinstance(inner, torch.nn.Module):
            module = inner
            continue
        if type(module).__name__ in ("DistributedDataParallel", "DataParallel", "FullyShardedDataParallel"):
            inner = getattr(module, "module", None)
            if isinstance(inner, torch.nn.Module):
                module = inner
                continue
        break
    return module


class Workbench:
    """Copies of the model(s) and optimizer, restorable to the captured state (snapshot / restore)."""

    def __init__(self, models: list[torch.nn.Module], optimizer: Any | None):
        self.originals = models
        self.memo: dict[int, Any] = {}
        self.in_place = False
        try:
            self.models = [copy.deepcopy(unwrap(m), self.memo) for m in models]
            for m, orig in zip(models, self.models):
                self.memo[id(m)] = orig  # the wrapper maps to the copy of what it wraps
            self.optimizer = self._copy_optimizer(optimizer) if optimizer is not None else None
        except Exception as exc:  # not deep-copyable: work in place, restore afterwards
            self.copy_error = f"{type(exc).__name__}: {exc}"
            self.memo = {}
            self.in_place = True
            self.models = [unwrap(m) for m in models]
            for m, inner in zip(models, self.models):
                self.memo[id(m)] = inner
            self.optimizer = optimizer
        self.lr_note = _undo_warmup(self.optimizer) if self.optimizer is not None else None
        self.training = [m.training for m in self.models]
        self._model_state = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in self.models]
        self._opt_state = copy.deepcopy(self.optimizer.state_dict()) if self.optimizer is not None else None
        self._rng = rng_state()

    def _copy_optimizer(self, optimizer: Any) -> Any:
        params = [p for g in optimizer.param_groups for p in g["params"]]
        for p in params:  # parameters outside the copied models get copies of their own
            if id(p) not in self.memo:
                copy.deepcopy(p, self.memo)
        new = copy.deepcopy(optimizer, self.memo)
        for name, value in optimizer.__dict__.items():  # what __getstate__ leaves out (LBFGS's _params)
            if name not in new.__dict__ and name not in ("step", "zero_grad"):
                new.__dict__[name] = copy.deepcopy(value, self.memo)
        for name in ("step", "zero_grad"):  # schedulers patch the instance; use the class's methods
            new.__dict__.pop(name, None)
        return new

    def map(self, obj: Any) -> Any:
        return self.memo.get(id(obj), obj)

    def reset(self) -> None:
        """Back to the captured state: weights, buffers, optimizer state, train/eval mode, RNG."""
        with torch.no_grad():
            for m, state, training in zip(self.models, self._model_state, self.training):
                m.load_state_dict(state)
                m.train(training)
                for p in m.parameters():
                    p.grad = None
        if self.optimizer is not None:
            self.optimizer.load_state_dict(copy.deepcopy(self._opt_state))
            self.optimizer.zero_grad(set_to_none=True)
        set_rng_state(self._rng)

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        named = []
        for i, m in enumerate(self.models):
            prefix = f"{i}." if len(self.models) > 1 else ""
            named.extend((prefix + n, p) for n, p in m.named_parameters())
        return named


def _undo_warmup(optimizer: Any) -> str | None:
    """Probe at the base learning rate, not at step 0 of a warmup (a scheduler's initial_lr, or the
    constructor's lr when every group sits far below it, as after nanoGPT's manual warmup)."""
    groups = optimizer.param_groups
    if groups and all("initial_lr" in g for g in groups):
        if any(g["lr"] != g["initial_lr"] for g in groups):
            before = [g["lr"] for g in groups]
            for g in groups:
                g["lr"] = g["initial_lr"]
            return (f"learning rate raised from {before[0]:.3g} (warmup) to the scheduler's initial_lr "
                    f"{groups[0]['lr']:.3g}")
        return None
    base = optimizer.defaults.get("lr") if isinstance(getattr(optimizer, "defaults", None), dict) else None
    try:
        base = float(base)
    except (TypeError, ValueError):
        return None
    if base > 0 and groups and all(float(g["lr"]) < 0.1 * base for g in groups):
        before = float(groups[0]["lr"])
        for g in groups:
            g["lr"] = base
        return f"learning rate raised from {before:.3g} (warmup) to the optimizer's base lr {base:.3g}"
    return None


def rng_state() -> dict:
    import random

    state = {"torch": torch.get_rng_state(), "random": random.getstate()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except Exception:
        pass
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    import random

    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])
