"""The watch recorder's numbers, read without synchronising the device at every step: values kept as tensors at
the step (the loss, gradient norms, a GPU's tensor learning rates) become numbers in one synchronisation per flush;
CUDA memory from the allocator's counters; each step's JSON line written fast (one is written for every step)."""

from __future__ import annotations

import json
import math
from typing import Any

import torch

from .watch_series import json_number as number


def floats(tensors: list) -> list[float | None]:
    """0-d tensors (or floats, or None) to floats, one stack and one synchronisation per device and dtype."""
    out: list[float | None] = [None] * len(tensors)
    groups: dict[Any, list[int]] = {}
    for i, t in enumerate(tensors):
        if isinstance(t, float):
            out[i] = t
        elif t is not None:
            groups.setdefault((t.device, t.dtype), []).append(i)
    for idx in groups.values():
        values = torch.stack([tensors[i].reshape(()) for i in idx]).double().tolist()
        for i, v in zip(idx, values):
            out[i] = v
    return out


def lr_floats(per_step: list[list]) -> list[list[float | None]]:
    """Each step's learning rates as floats: tensor ones (a GPU's) in one synchronisation for all the steps."""
    if all(isinstance(x, float) or x is None for lrs in per_step for x in lrs):
        return per_step
    flat = iter(floats([x for lrs in per_step for x in lrs]))
    return [[next(flat) for _ in lrs] for lrs in per_step]


def total_norms(per_step: list) -> list[float | None]:
    """The global gradient norm of each step (None where it was not taken): a float taken at the step (CPU), or
    from the vector of its per-parameter norms (GPU): one reduction for all the steps when the vectors match."""
    out: list[float | None] = [v if isinstance(v, float) else None for v in per_step]  # CPU: taken at the step
    present = [i for i, v in enumerate(per_step) if isinstance(v, torch.Tensor)]
    if not present:
        return out
    if len({(per_step[i].shape, per_step[i].device) for i in present}) == 1:
        values = torch.linalg.vector_norm(torch.stack([per_step[i] for i in present]).double(), dim=1).tolist()
        for i, v in zip(present, values):
            out[i] = v
    else:
        for i in present:
            out[i] = float(torch.linalg.vector_norm(per_step[i].double()))
    return out


def step_line(p: tuple, loss: float | None, norm: float | None, lr: list[float | None]) -> str:
    """A step record's JSON line, from the recorder's pending tuple (step, loss, norm, lrs, seconds, backwards, data
    seconds, samples, epoch, paused seconds) and the numbers read for it at the flush."""
    step, _, _, _, seconds, backwards, data, samples, epoch, paused = p
    compute = None if seconds is None or data is None else max(0.0, seconds - data - paused)
    busy = None if seconds is None else seconds - paused
    rate = None if samples is None or busy is None or busy <= 0 else samples / busy
    return (f'{{"kind": "step", "step": {step}, "loss": {literal(loss)}, "grad_norm": {literal(norm)}, '
            f'"lr": [{", ".join(literal(x) for x in lr)}], "seconds": {literal(seconds)}, '
            f'"backwards": {backwards}, "data_seconds": {literal(data)}, "compute_seconds": {literal(compute)}, '
            f'"samples": {"null" if samples is None else samples}, "samples_per_second": {literal(rate)}, '
            f'"epoch": {"null" if epoch is None else epoch}}}\n')


def literal(value: float | None) -> str:
    """A number as a JSON literal, fast (a step line is written for every step); non-finite as a string."""
    if value is None:
        return "null"
    return repr(float(value)) if math.isfinite(value) else json.dumps(number(value))


def group_lr(group: dict):
    """A group's learning rate: a float, or a copy of a tensor learning rate off the CPU (turned into a number at
    the next flush: no synchronisation at every step), or None."""
    lr = group.get("lr")
    if isinstance(lr, torch.Tensor) and lr.device.type != "cpu":
        return lr.detach().clone()  # the optimizer updates it in place
    try:
        return float(lr)
    except (TypeError, ValueError):
        return None


def spread(grads: list, norms: list) -> list:
    """The norms of the present gradients, placed back among the missing ones."""
    it = iter(norms)
    return [None if g is None else next(it) for g in grads]


def cuda_memory(params: list[torch.Tensor]) -> dict | None:
    """Memory the CUDA caching allocator holds (no synchronisation), when the model is on a GPU."""
    if not params or params[0].device.type != "cuda":
        return None
    device = params[0].device
    return {"allocated": torch.cuda.memory_allocated(device), "reserved": torch.cuda.memory_reserved(device),
            "peak": torch.cuda.max_memory_allocated(device)}
