"""Exact snapshots of the user's own model(s), optimizer and random generators, and their restore.

The checks train the script's real objects (copies would keep closures such as ``self.f = lambda x: self.mlp(x)``
bound to the originals), so everything they may change is put back afterwards: the bytes of every parameter,
buffer, gradient and plain tensor attribute (into the same tensor objects), each module's train/eval flag and plain
scalar attributes, the optimizer's state (the same dicts and tensors, step counts included) and ``param_groups``
(lr, weight decay, ...), and the torch (CPU and CUDA), numpy and ``random`` generators. ``digest`` fingerprints
the same state independently, so the harness can show the restore was byte-identical.
"""

from __future__ import annotations

import copy
import hashlib
import random
from typing import Any

import torch

_SCALARS = (int, float, bool, str, type(None))
_MODULE_INTERNALS = {"_parameters", "_buffers", "_modules", "training", "_non_persistent_buffers_set"}
_OPT_INTERNALS = {"state", "param_groups", "defaults"}


def rng_state() -> dict:
    """The state of torch's CPU (and initialised CUDA) generators, numpy's and ``random``'s."""
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
    """Put back the generators saved by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["random"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state:
        torch.cuda.set_rng_state_all(state["cuda"])


def all_modules(models: list[torch.nn.Module]) -> list[torch.nn.Module]:
    """Every module of ``models``, each once (shared submodules included)."""
    seen: dict[int, torch.nn.Module] = {}
    for model in models:
        for m in model.modules():
            seen.setdefault(id(m), m)
    return list(seen.values())


class _Saved:
    """A tensor object and a copy of its bytes."""

    __slots__ = ("obj", "value")

    def __init__(self, t: torch.Tensor):
        self.obj = t
        self.value = t.detach().clone()

    def put_back(self) -> torch.Tensor:
        t = self.obj
        with torch.no_grad():
            if t.shape == self.value.shape and t.dtype == self.value.dtype and t.device == self.value.device:
                t.copy_(self.value)
            else:  # resized or moved by a check: give it back its own data
                t.data = self.value.clone()
        return t


def _save_value(v: Any) -> Any:
    return _Saved(v) if isinstance(v, torch.Tensor) else copy.deepcopy(v)


def _load_value(v: Any) -> Any:
    return v.put_back() if isinstance(v, _Saved) else copy.deepcopy(v)


class StateSnapshot:
    """Everything a check may change in ``models`` and ``optimizer``, restorable exactly (same objects, same bytes)."""

    def __init__(self, models: list[torch.nn.Module], optimizer: Any | None):
        self.modules = []
        for m in all_modules(models):
            params = {k: (p, _Saved(p) if p is not None else None,
                          _Saved(p.grad) if p is not None and p.grad is not None else None,
                          p.requires_grad if p is not None else None)
                      for k, p in m._parameters.items()}
            buffers = {k: (b, _Saved(b) if b is not None else None) for k, b in m._buffers.items()}
            # plain attributes: scalars, and tensors (their bytes too, unless they hold a graph: the reference only)
            plain = {k: _Saved(v) if isinstance(v, torch.Tensor) and not v.requires_grad else v
                     for k, v in m.__dict__.items()
                     if k not in _MODULE_INTERNALS and isinstance(v, (torch.Tensor, *_SCALARS))}
            self.modules.append((m, m.training, params, buffers, plain))
        self.optimizer = optimizer
        if optimizer is not None:
            self.opt_state_obj = optimizer.state
            self.opt_state = [(p, entry, {k: _save_value(v) for k, v in entry.items()})
                              for p, entry in optimizer.state.items()]
            self.groups_obj = optimizer.param_groups
            self.groups = [(g, {k: ((v, list(v)) if k == "params" else _save_value(v)) for k, v in g.items()})
                           for g in optimizer.param_groups]
            self.defaults = dict(optimizer.defaults) if isinstance(optimizer.defaults, dict) else None
            self.opt_plain = {k: v for k, v in optimizer.__dict__.items()
                              if k not in _OPT_INTERNALS and isinstance(v, _SCALARS)}
        self.rng = rng_state()

    def restore(self, grads: bool = True) -> None:
        """Put everything back; ``grads=False`` leaves every gradient ``None`` instead (a fresh start for a check)."""
        for m, training, params, buffers, plain in self.modules:
            m.training = training
            for k, (p, saved, grad, requires_grad) in params.items():
                m._parameters[k] = p
                if p is None:
                    continue
                saved.put_back()
                p.requires_grad_(requires_grad)
                p.grad = grad.put_back() if grads and grad is not None else None
            for k in [k for k in m._parameters if k not in params]:
                del m._parameters[k]
            for k, (b, saved) in buffers.items():
                m._buffers[k] = saved.put_back() if saved is not None else None
            for k in [k for k in m._buffers if k not in buffers]:
                del m._buffers[k]
            for k, v in plain.items():
                m.__dict__[k] = v.put_back() if isinstance(v, _Saved) else v
        opt = self.optimizer
        if opt is not None:
            opt.__dict__["state"] = self.opt_state_obj
            self.opt_state_obj.clear()
            for p, entry, items in self.opt_state:
                entry.clear()
                entry.update({k: _load_value(v) for k, v in items.items()})
                self.opt_state_obj[p] = entry
            opt.__dict__["param_groups"] = self.groups_obj
            self.groups_obj[:] = [g for g, _ in self.groups]
            for g, items in self.groups:
                g.clear()
                for k, v in items.items():
                    if k == "params":
                        params, contents = v
                        if isinstance(params, list):
                            params[:] = contents
                        g[k] = params
                    else:
                        g[k] = _load_value(v)
            if self.defaults is not None:
                opt.defaults.clear()
                opt.defaults.update(self.defaults)
            opt.__dict__.update(self.opt_plain)
        set_rng_state(self.rng)


def digest(models: list[torch.nn.Module], optimizer: Any | None) -> dict[str, str]:
    """A fingerprint of every parameter, buffer, gradient and train flag, the optimizer's state dict and the random
    generators, walked independently of :class:`StateSnapshot` (so a restore that missed something shows)."""
    out: dict[str, str] = {}
    for i, model in enumerate(models):
        for name, m in model.named_modules(remove_duplicate=False):
            out[f"{i}.{name}:training"] = str(m.training)
        for name, p in model.named_parameters(remove_duplicate=False):
            out[f"{i}.{name}"] = _hash(p)
            out[f"{i}.{name}:grad"] = _hash(p.grad) if p.grad is not None else "none"
            out[f"{i}.{name}:requires_grad"] = str(p.requires_grad)
        for name, b in model.named_buffers(remove_duplicate=False):
            out[f"{i}.{name}:buffer"] = _hash(b)
    if optimizer is not None:
        sd = optimizer.state_dict()
        for key, entry in sd["state"].items():
            for k, v in entry.items():
                out[f"optimizer.state.{key}.{k}"] = _hash_value(v)
        for j, g in enumerate(sd["param_groups"]):
            for k, v in g.items():
                out[f"optimizer.group{j}.{k}"] = _hash_value(v)
    for k, v in rng_state().items():
        out[f"rng.{k}"] = _hash_value(v)
    return out


def compare(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """The names whose fingerprint differs (or that appeared / disappeared)."""
    return sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))


def _hash(t: torch.Tensor) -> str:
    t = t.detach()
    if t.layout != torch.strided:  # a sparse gradient (Embedding(sparse=True)): its indices and values
        t = t.coalesce() if t.is_sparse else t.to_dense()
        if t.is_sparse:
            return _hash_value([t.indices(), t.values()])
    h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}{t.device}".encode())
    if t.numel():
        raw = t.cpu().contiguous().reshape(-1).view(torch.uint8)
        try:
            h.update(raw.numpy().tobytes())
        except Exception:  # torch without numpy
            h.update(bytes(raw.tolist()))
    return h.hexdigest()


def _hash_value(v: Any) -> str:
    if isinstance(v, torch.Tensor):
        return _hash(v)
    if isinstance(v, (list, tuple)):
        return hashlib.sha256("|".join(_hash_value(x) for x in v).encode()).hexdigest()
    try:
        import numpy as np

        if isinstance(v, np.ndarray):
            return hashlib.sha256(v.tobytes() + str(v.dtype).encode()).hexdigest()
    except Exception:
        pass
    return hashlib.sha256(repr(v).encode()).hexdigest()
