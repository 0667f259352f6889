"""lr-range: the learning-rate sweep of fastai / torch-lr-finder (1e-8 → 1 on the sub-batch, a bias-corrected
exponential moving average, stop once the smoothed loss exceeds 4× its minimum), suggesting the steepest descent
before divergence and judging the configured learning rate against it."""

from __future__ import annotations

import math
import time

from ..context import CheckResult, ProbeContext, finite, needs_closure

ID = "lr-range"

LR_BETA = 0.95  # torch-lr-finder's smooth_f = 0.05 (fastai: 0.98 over 100 steps); bias-corrected
LR_DIVERGE = 4.0  # fastai / Lightning: stop once the smoothed loss exceeds 4x its minimum
LR_FLAT = 0.02  # a sweep whose smoothed loss never drops 2 % below its start is flat: nothing to suggest
LR_BUDGET_S = 60.0


def sweep_curve(losses: list[float], beta: float = LR_BETA) -> tuple[list[float], int | None]:
    """The bias-corrected exponential moving average of an LR sweep's losses, and the index where the sweep
    diverges (a non-finite loss, or the smoothed loss above ``LR_DIVERGE``× its minimum so far), if it does."""
    smoothed: list[float] = []
    avg, best = 0.0, math.inf
    for i, loss in enumerate(losses):
        if not finite(loss):
            return smoothed, i
        avg = beta * avg + (1 - beta) * loss
        value = avg / (1 - beta ** (i + 1))
        smoothed.append(value)
        if i > 0 and value > LR_DIVERGE * best:
            return smoothed, i
        best = min(best, value)
    return smoothed, None


def steepest_descent(lrs: list[float], losses: list[float], smoothed: list[float],
                     diverged: int | None) -> tuple[int | None, str]:
    """Index of the steepest descent of the smoothed loss (per decade of LR) before divergence and before the raw
    loss first blows up (above ``LR_DIVERGE``× the best smoothed loss so far); None and why when there is none."""
    end = len(smoothed) if diverged is None else min(diverged, len(smoothed))
    best = math.inf
    for i in range(end):
        best = min(best, smoothed[i])
        if not finite(losses[i]) or losses[i] > LR_DIVERGE * best:
            end = i
            break
    if end < 3:
        return None, "diverged"
    window = smoothed[:end]
    if window[0] - min(window) < LR_FLAT * abs(window[0]):
        return None, "flat"
    logs = [math.log10(lr) for lr in lrs[:end]]
    slopes = [((window[i + 1] - window[i - 1]) / (logs[i + 1] - logs[i - 1]), i) for i in range(1, end - 1)]
    slope, index = min(slopes)
    if slope >= 0:
        return None, "flat"
    return index, "steepest"


def lr_range(ctx: ProbeContext) -> CheckResult:
    cid = "lr-range"
    site = ctx.sites.get("optimizer") or ctx.sites.get("loop")
    configured = ctx.configured_lrs()
    if not configured:
        return CheckResult(cid, "skip", "no optimizer with a learning rate", None, None, site)
    lr = configured[0]
    if needs_closure(ctx.optimizer):
        return CheckResult(cid, "skip", f"{type(ctx.optimizer).__name__} steps with a closure and scales its own "
                           "step (quasi-Newton direction, line search): a learning-rate sweep of one update per "
                           "learning rate says nothing about it", {"configured": lr}, None, site)
    steps = max(40, ctx.steps)
    lo, hi = 1e-8, max(1.0, 10.0 * lr)
    lrs = [lo * (hi / lo) ** (i / (steps - 1)) for i in range(steps)]
    started = time.perf_counter()
    budget = {"hit": False}

    def stop(losses: list[float]) -> bool:
        if time.perf_counter() - started > LR_BUDGET_S:
            budget["hit"] = True
            return True
        return sweep_curve(losses)[1] is not None

    losses = ctx.train(cid, steps, sub=True, lrs=lrs, stop=stop)
    if not losses or not finite(losses[0]):
        first = losses[0] if losses else None
        return CheckResult(cid, "error", f"the sweep's first loss is {first} (at lr {lo:.0e}, before any real "
                           "update): the loss is not finite to begin with — see initial-loss", {"configured": lr},
                           None, site, {"lr": lrs[:len(losses)], "loss": losses})
    smoothed, diverged = sweep_curve(losses)
    n = len(losses)
    used = lrs[:n]
    series = {"lr": used, "loss": losses, "smoothed": smoothed, "configured": lr}
    diverged_at = used[diverged] if diverged is not None else None
    index, why = steepest_descent(used, losses, smoothed, diverged)
    measured = {"configured": lr, "suggested": None, "diverged_at": diverged_at, "points": n}
    if budget["hit"]:
        measured["stopped"] = f"time budget of {LR_BUDGET_S:.0f} s"
    if index is None and why == "diverged":
        return CheckResult(cid, "skip", "the sweep diverged immediately; no suggestion", measured, None, site,
                           series)
    if index is None:
        return CheckResult(cid, "warn", f"the loss stayed flat over the sweep (lr {used[0]:.0e} to {used[-1]:.2g}, no "
                           f"drop of {LR_FLAT:.0%}): no learning rate to suggest — see overfit-batch", measured, None,
                           site, series)
    suggestion = used[index]
    series["suggestion"] = suggestion
    measured["suggested"] = suggestion
    low_bound = suggestion / 300
    expected = [low_bound, 3 * suggestion]
    if diverged_at is not None and lr >= diverged_at:
        return CheckResult(cid, "warn", f"the configured learning rate {lr:.3g} is at or past the point where the "
                           f"sweep diverges ({diverged_at:.3g}); the steepest descent is at {suggestion:.3g}",
                           measured, expected, site, series)
    if lr > 3 * suggestion:
        return CheckResult(cid, "warn", f"the configured learning rate {lr:.3g} is {lr / suggestion:.0f}× the "
                           f"steepest descent of the sweep ({suggestion:.3g}): probably too high",
                           measured, expected, site, series)
    if lr < low_bound:
        return CheckResult(cid, "warn", f"the configured learning rate {lr:.3g} is over 300× below the steepest "
                           f"descent of the sweep ({suggestion:.3g}): training will be slow",
                           measured, expected, site, series)
    return CheckResult(cid, "pass", f"the configured learning rate {lr:.3g} is in the useful range (steepest "
                       f"descent at {suggestion:.3g}" + (f", divergence from {diverged_at:.3g})" if diverged_at
                                                         else ")"), measured, expected, site, series)


check = lr_range
