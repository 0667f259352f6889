"""gradient-flow: a ReLU layer is dead at >= 70 % never-active units (AUTOTRAINER, DeepDiagnosis); healthy
update/weight ratios sit near 1e-3 (cs231n), we warn outside (1e-4, 1e-1)."""

from __future__ import annotations

from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

from ..context import CheckResult, ProbeContext, finite, needs_closure, optimizer_step

ID = "gradient-flow"
DEAD_FRACTION = 0.7
RATIO_BAND = (1e-4, 1e-1)


class _ReluWatch(TorchFunctionMode):
    def __init__(self, where: Callable[[], str]):
        super().__init__()
        self.where = where
        self.outputs: list[tuple[str, torch.Tensor]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in ("relu", "relu_") and isinstance(out, torch.Tensor):
            self.outputs.append((self.where(), out.detach()))
        return out


def _dead_fraction(x: torch.Tensor) -> tuple[float, int]:
    if x.dim() < 2:
        return 0.0, 0
    if x.dim() in (4, 5):
        unit_dim = 1
    else:
        unit_dim = x.dim() - 1
    active = (x > 0).transpose(0, unit_dim).reshape(x.shape[unit_dim], -1).any(1)
    return 1.0 - float(active.float().mean()), int(active.numel())


def gradient_flow(ctx: ProbeContext) -> CheckResult:
    cid = "gradient-flow"
    site = ctx.sites.get("model")
    wb = ctx.wb
    wb.reset()
    stack: list[str] = []
    handles = []
    def push(name: str):
        def hook(mod, args):
            stack.append(name)
        return hook

    def pop(mod, args, out):
        if stack:
            stack.pop()

    for m in wb.models:
        for name, mod in m.named_modules():
            handles.append(mod.register_forward_pre_hook(push(name)))
            handles.append(mod.register_forward_hook(pop))
    watch = _ReluWatch(lambda: stack[-1] if stack else "")
    try:
        with watch:
            result = ctx.step.run(wb, sub=False)
    finally:
        for h in handles:
            h.remove()
    loss = result.loss if result.loss.numel() == 1 else result.loss.float().mean()
    loss.backward()
    params = wb.parameters()
    names, norms, ratios = [], [], []
    unused, nonfinite, zero = [], [], []
    before = {}
    for name, p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            unused.append(name)
            continue
        g = p.grad.detach()
        if not torch.isfinite(g).all():
            nonfinite.append(name)
        gn = float(g.double().norm())
        if gn == 0.0:
            zero.append(name)
        names.append(name)
        norms.append(gn)
        before[name] = p.detach().clone()
    opt = wb.optimizer
    if opt is not None and not nonfinite:
        optimizer_step(opt, lambda: ctx.step.run(wb, sub=False).loss)
        for name, p in params:
            if name in before:
                w = before[name]
                wn = float(w.double().norm())
                ratios.append(float((p.detach() - w).double().norm()) / wn if wn > 0 else float("nan"))
    wb.reset()
    dead = []
    counts: dict[str, int] = {}
    relu_names, relu_dead = [], []
    for where, out in watch.outputs:
        frac, units = _dead_fraction(out)
        if units == 0:
            continue
        counts[where] = counts.get(where, 0) + 1
        label = f"{where or 'model'}:relu{counts[where]}"
        relu_names.append(label)
        relu_dead.append(frac)
        if frac >= DEAD_FRACTION and units >= 4:
            dead.append((label, frac))
    weight_ratios = [r for (n, r) in zip(names, ratios) if finite(r) and dict(params)[n].dim() >= 2]
    median_ratio = sorted(weight_ratios)[len(weight_ratios) // 2] if weight_ratios else None
    series = {"layers": names, "grad_norm": norms, "update_ratio": ratios, "relu": relu_names,
              "relu_dead_fraction": relu_dead}
    measured = {"median_update_ratio": median_ratio, "dead_relu_layers": [d[0] for d in dead],
                "unused_parameters": unused, "nonfinite_gradients": nonfinite, "zero_gradients": zero,
                "max_dead_fraction": max(relu_dead) if relu_dead else None}
    expected = {"update_ratio": list(RATIO_BAND), "dead_fraction": f"< {DEAD_FRACTION:.0%}"}
    if nonfinite:
        return CheckResult(cid, "fail", f"NaN/inf gradients in {', '.join(nonfinite[:4])} on the first step",
                           measured, expected, site, series)
    if names and len(zero) == len(names):
        return CheckResult(cid, "fail", "no gradient reaches any parameter (all gradients are exactly zero)",
                           measured, expected, site, series)
    if dead:
        worst = max(dead, key=lambda d: d[1])
        return CheckResult(cid, "fail", f"dead ReLUs: {worst[1]:.0%} of the units of {worst[0]} never activate on "
                           f"this batch ({len(dead)} layer(s) ≥ {DEAD_FRACTION:.0%}) — check the init, the "
                           "input scale and the learning rate", measured, expected, site, series)
    if unused:
        return CheckResult(cid, "warn", f"{len(unused)} parameter(s) get no gradient ({', '.join(unused[:4])}): "
                           "unused layers, or a graph cut by .detach()/.item()", measured, expected, site, series)
    closure = opt is not None and needs_closure(opt)  # LBFGS: one step is many inner iterations, by design large
    if median_ratio is not None and not closure and not (RATIO_BAND[0] < median_ratio < RATIO_BAND[1]):
        side = "small: the learning rate is probably too low" if median_ratio <= RATIO_BAND[0] else \
            "large: the learning rate is probably too high"
        return CheckResult(cid, "warn", f"the first update changes the weights by {median_ratio:.1e} of their norm "
                           f"(median; healthy ≈ 1e-3) — too {side}", measured, expected, site, series)
    if zero:
        return CheckResult(cid, "warn", f"exactly zero gradient for {', '.join(zero[:4])}", measured, expected,
                           site, series)
    ratio_txt = f", update/weight ratio {median_ratio:.1e}" if median_ratio is not None else ""
    if closure and median_ratio is not None:
        ratio_txt += f" (not judged: {type(opt).__name__} takes several inner steps per step)"
    return CheckResult(cid, "pass", f"gradients reach all {len(names)} parameter tensors, finite{ratio_txt}, "
                       "no dead ReLU layer", measured, expected, site, series)


check = gradient_flow
