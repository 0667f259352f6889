"""gradient-flow: a ReLU layer is dead at >= 70 % never-active units (AUTOTRAINER, DeepDiagnosis); healthy
update/weight ratios sit near 1e-3 (cs231n): judged over several steps (Adam's first steps are large by design), a
ratio outside (1e-4, 1e-1) is checked against the lr-range sweep, so the two checks never contradict each other."""

from __future__ import annotations

from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

from ..budget import Budget
from ..context import CheckResult, ProbeContext, finite, needs_closure

ID = "gradient-flow"
DEAD_FRACTION = 0.7
RATIO_BAND = (1e-4, 1e-1)
RATIO_STEPS = 10  # optimizer steps over which the update / weight ratio is judged


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
    cid = ID
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
    names, norms = [], []
    unused, nonfinite, zero = [], [], []
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
    wb.reset()
    opt = wb.optimizer
    closure = opt is not None and needs_closure(opt)  # LBFGS: one step is many inner iterations, by design large
    zero_lr = ctx.zero_lr_reason() is not None  # no update to measure
    ratios, per_step, budget = _update_ratios(ctx, names) \
        if opt is not None and not nonfinite and not closure and not zero_lr else ([], [], None)
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
    shapes = dict(params)
    weight_ratios = [r for (n, r) in zip(names, ratios) if finite(r) and shapes[n].dim() >= 2]
    median_ratio = _median(weight_ratios)
    series = {"layers": names, "grad_norm": norms, "update_ratio": ratios, "update_ratio_per_step": per_step,
              "relu": relu_names, "relu_dead_fraction": relu_dead}
    measured = {"median_update_ratio": median_ratio, "ratio_steps": len(per_step),
                "dead_relu_layers": [d[0] for d in dead],
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
    ratio_txt = ""
    if median_ratio is not None:
        side = "ok" if RATIO_BAND[0] < median_ratio < RATIO_BAND[1] else \
            ("low" if median_ratio <= RATIO_BAND[0] else "high")
        ctx.cache["update-ratio"] = {"value": median_ratio, "side": side, "steps": len(per_step)}
        said = f"{median_ratio:.1e} of their norm per step (median over {len(per_step)} steps)"
        if side != "ok":
            status, text = _against_lr_range(ctx, side, said)
            if status == "warn":
                return budget.mark(CheckResult(cid, "warn", text, measured, expected, site, series), len(per_step),
                                   RATIO_STEPS)
            ratio_txt = f"; {text}"
        else:
            ratio_txt = f", update/weight ratio {said}"
    if zero:
        return CheckResult(cid, "warn", f"exactly zero gradient for {', '.join(zero[:4])}", measured, expected,
                           site, series)
    if closure:
        ratio_txt = f"; update/weight ratio not judged: {type(opt).__name__} takes several inner steps per step"
    elif zero_lr:
        ratio_txt = ("; update/weight ratio not judged: the learning rate is 0 at the probed step (see lr-range)"
                     if not any(ctx.configured_lrs()) else
                     "; update/weight ratio not judged: the probed step is still in a warmup from 0 (see lr-range)")
    result = CheckResult(cid, "pass", f"gradients reach all {len(names)} parameter tensors, finite, no dead ReLU "
                         f"layer{ratio_txt}", measured, expected, site, series)
    return budget.mark(result, len(per_step), RATIO_STEPS) if budget is not None else result


def _median(values: list[float]) -> float | None:
    return sorted(values)[len(values) // 2] if values else None


def _update_ratios(ctx: ProbeContext, names: list[str]) -> tuple[list[float], list[float], Budget]:
    """‖Δw‖ / ‖w‖ of each named parameter per step over ``RATIO_STEPS`` optimizer steps on the sub-batch: per
    parameter the median over the second half of the steps (Adam's first steps are large by design), and per step
    the median over the weight matrices."""
    wb = ctx.wb
    named = dict(wb.parameters())
    weights = [(n, named[n]) for n in names]
    history: list[dict[str, float]] = []
    previous: dict[str, torch.Tensor] = {}

    def record(losses: list[float]) -> bool:  # called before each update: the weights after the last one
        current = {n: p.detach().clone() for n, p in weights}
        if previous:
            history.append({n: _ratio(current[n], previous[n]) for n, _ in weights})
        previous.clear()
        previous.update(current)
        return len(losses) > RATIO_STEPS

    budget = Budget(ID)
    ctx.train(ID, RATIO_STEPS + 1, sub=True, stop=budget.stop(record))
    settled = history[len(history) // 2:]
    per_param = [_median([h[n] for h in settled if finite(h[n])]) for n, _ in weights]
    per_step = [_median([h[n] for n, p in weights if p.dim() >= 2 and finite(h[n])]) for h in history]
    return [r if r is not None else float("nan") for r in per_param], per_step, budget


def _ratio(now: torch.Tensor, before: torch.Tensor) -> float:
    norm = float(before.double().norm())
    return float((now - before).double().norm()) / norm if norm > 0 else float("nan")


def _against_lr_range(ctx: ProbeContext, side: str, said: str) -> tuple[str, str]:
    """The verdict on an update / weight ratio outside the healthy band, checked against the learning-rate sweep:
    ("warn", why) when the sweep agrees or cannot say; ("pass", the explanation) when it finds otherwise (the sweep
    measures the loss, the ratio only a rule of thumb)."""
    from .lr_range import judge_lr, sweep

    claim = "too small: the learning rate is probably too low" if side == "low" else \
        "too large: the learning rate is probably too high"
    head = f"the updates change the weights by {said}; healthy ≈ 1e-3"
    sw = sweep(ctx) if ctx.configured_lrs() else None
    verdict = judge_lr(sw) if sw is not None else None
    if verdict == side:
        return "warn", f"{head} — {claim}; consistent with lr-range (steepest descent at {sw['suggested']:.3g})"
    if verdict is not None:  # the sweep measures the loss itself: its verdict on the learning rate stands
        found = "in its useful range" if verdict == "ok" else f"too {verdict}"
        return "pass", (f"update/weight ratio {said} is {'below' if side == 'low' else 'above'} the usual 1e-3, but "
                        f"lr-range's sweep finds the learning rate {sw['configured']:.3g} {found} (steepest descent "
                        f"at {sw['suggested']:.3g}): the ratio reflects the weights' scale here, so the learning rate "
                        "is judged by lr-range")
    why = {"flat": "its loss stayed flat", "diverged": "it diverged at once", "nonfinite": "its first loss is not "
           "finite", "closure": "the optimizer steps with a closure"}.get(sw.get("why") if sw else None,
                                                                         "no learning rate to sweep")
    return "warn", f"{head} — {claim} (lr-range cannot confirm it: {why})"


check = gradient_flow
