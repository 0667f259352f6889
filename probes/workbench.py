"""The user's own model(s) and optimizer, as the checks train them, and their restore to the captured state.

The checks work on the real objects, never on copies: a deep copy keeps closures and lambdas stored in a module
(``self.f = lambda x: self.mlp(x)``) bound to the original, so the copy would train the original. Before the
first check the state is saved exactly (``restore.StateSnapshot``); every check starts from it (``reset``) and the
script gets it back byte for byte at the end (``restore``).
"""

from __future__ import annotations

from typing import Any

import torch

from .restore import StateSnapshot, all_modules, compare, digest


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
    """The model(s) and optimizer the checks train, in place, with the state they all start from.

    ``also``: other modules the replayed step calls without training them (a GAN generator step's discriminator);
    their state is saved and restored as well."""

    def __init__(self, models: list[torch.nn.Module], optimizer: Any | None,
                 also: list[torch.nn.Module] = ()):
        self.originals = models
        self.models = [unwrap(m) for m in models]
        self.memo: dict[int, Any] = {id(m): inner for m, inner in zip(models, self.models)}
        self.optimizer = optimizer
        inside = {id(m) for m in all_modules(self.models)}
        others = {id(unwrap(m)): unwrap(m) for m in also}
        self.roots = self.models + [m for m in others.values() if id(m) not in inside]
        self._before = digest(self.roots, optimizer)
        self._snapshot = StateSnapshot(self.roots, optimizer)
        self.lr_note = _undo_warmup(optimizer) if optimizer is not None else None
        self._lrs = [g["lr"] for g in optimizer.param_groups] if optimizer is not None else []

    def map(self, obj: Any) -> Any:
        return self.memo.get(id(obj), obj)

    def reset(self) -> None:
        """Back to the captured state, gradients cleared, at the probed learning rate (warmup undone)."""
        self._snapshot.restore(grads=False)
        if self.optimizer is not None:
            for g, lr in zip(self.optimizer.param_groups, self._lrs):
                g["lr"] = lr

    def restore(self) -> dict:
        """Give the script its state back exactly as the probe found it (gradients and learning rate included);
        the self-check: how many values were compared and which differ."""
        self._snapshot.restore(grads=True)
        after = digest(self.roots, self.optimizer)
        return {"identical": after == self._before, "values": len(self._before),
                "differences": compare(self._before, after)[:20]}

    def parameters(self) -> list[tuple[str, torch.nn.Parameter]]:
        named = []
        for i, m in enumerate(self.models):
            prefix = f"{i}." if len(self.models) > 1 else ""
            named.extend((prefix + n, p) for n, p in m.named_parameters())
        return named


def _undo_warmup(optimizer: Any) -> str | None:
    """Probe at the base learning rate, not at step 0 of a warmup; the note saying so, or None."""
    found = warmup_base(optimizer)
    if found is None:
        return None
    lrs, note = found
    for g, lr in zip(optimizer.param_groups, lrs):
        g["lr"] = lr
    return note


def warmup_base(optimizer: Any) -> tuple[list[float], str] | None:
    """The learning rates a warmup is heading for, with a note saying where they come from (a scheduler's
    initial_lr, or the constructor's lr when every group sits far below it, as after nanoGPT's manual warmup);
    None when the groups are not in a warmup the probe can read, or no base value is known."""
    groups = optimizer.param_groups
    if groups and all("initial_lr" in g for g in groups):
        if any(g["lr"] != g["initial_lr"] for g in groups):
            lrs = [g["initial_lr"] for g in groups]
            return lrs, (f"learning rate raised from {groups[0]['lr']:.3g} (warmup) to the scheduler's initial_lr "
                         f"{lrs[0]:.3g}")
        return None
    base = optimizer.defaults.get("lr") if isinstance(getattr(optimizer, "defaults", None), dict) else None
    try:
        base = float(base)
    except (TypeError, ValueError):
        return None
    if base > 0 and groups and all(float(g["lr"]) < 0.1 * base for g in groups):
        before = float(groups[0]["lr"])
        return [base] * len(groups), (f"learning rate raised from {before:.3g} (warmup) to the optimizer's base lr "
                                      f"{base:.3g}")
    return None


def probed_lrs(optimizer: Any) -> list[float]:
    """The learning rates the checks would train at: the groups' own, or the warmup's base (``warmup_base``)."""
    found = warmup_base(optimizer)
    return [float(lr) for lr in found[0]] if found is not None else [float(g["lr"]) for g in optimizer.param_groups]
