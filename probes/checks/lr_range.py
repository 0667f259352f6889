"""lr-range: the learning-rate sweep of fastai / torch-lr-finder (1e-8 → 1 on the sub-batch, a bias-corrected
exponential moving average, stop once the smoothed loss exceeds 4× its minimum), suggesting the steepest descent
before divergence and judging the configured learning rate against it."""

from __future__ import annotations

import math

from ..budget import PARTIAL, Budget
from ..context import OVERFIT_FRACTION, CheckResult, ProbeContext, finite, needs_closure

ID = "lr-range"

LR_BETA = 0.95  # torch-lr-finder's smooth_f = 0.05 (fastai: 0.98 over 100 steps); bias-corrected
LR_DIVERGE = 4.0  # fastai / Lightning: stop once the smoothed loss exceeds 4x its minimum
LR_FLAT = 0.02  # a sweep whose smoothed loss never drops 2 % below its start is flat: nothing to suggest


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


def sweep(ctx: ProbeContext) -> dict:
    """The learning-rate sweep on the sub-batch, run once per probe (gradient-flow consults it, lr-range reports
    it): the learning rates and losses, the smoothed curve, where it diverged, the suggestion (or why there is
    none: ``why`` is "steepest", "flat", "diverged", "budget", "nonfinite" or "closure") and the configured learning
    rate."""
    if "lr-sweep" in ctx.cache:
        return ctx.cache["lr-sweep"]
    lr = ctx.configured_lrs()[0]
    out: dict = {"configured": lr, "suggested": None, "stopped": None}
    if needs_closure(ctx.optimizer):
        out["why"] = "closure"
    else:
        steps = max(40, ctx.steps)
        lo, hi = 1e-8, max(1.0, 10.0 * lr)
        lrs = [lo * (hi / lo) ** (i / (steps - 1)) for i in range(steps)]
        budget = Budget(ID)
        losses = ctx.train(ID, steps, sub=True, lrs=lrs, stop=budget.stop(lambda ls: sweep_curve(ls)[1] is not None))
        out.update(lrs=lrs[:len(losses)], losses=losses, first_lr=lo)
        if budget.hit:
            out["stopped"] = budget.stopped(len(losses), steps)
        if not losses or not finite(losses[0]):
            out["why"] = "nonfinite"
        else:
            smoothed, diverged = sweep_curve(losses)
            index, why = steepest_descent(out["lrs"], losses, smoothed, diverged)
            if index is None and budget.hit and diverged is None:
                why = "budget"  # cut short at small learning rates: neither flat nor diverged, just unfinished
            out.update(smoothed=smoothed, diverged_at=out["lrs"][diverged] if diverged is not None else None,
                       why=why, suggested=out["lrs"][index] if index is not None else None,
                       memorised_in=_memorised_in(ctx.cache.get("overfit")))
    ctx.cache["lr-sweep"] = out
    return out


def judge_lr(sw: dict) -> str | None:
    """What the sweep says of the configured learning rate: "high", "low", "ok", or None without a suggestion."""
    lr, suggestion = sw["configured"], sw.get("suggested")
    if suggestion is None:
        return None
    if (sw.get("diverged_at") is not None and lr >= sw["diverged_at"]) or lr > 3 * suggestion:
        return "high"
    return "low" if lr < suggestion / 300 and not sw.get("memorised_in") else "ok"


def lr_range(ctx: ProbeContext) -> CheckResult:
    cid = ID
    site = ctx.sites.get("optimizer") or ctx.sites.get("loop")
    if not ctx.configured_lrs():
        return CheckResult(cid, "skip", "no optimizer with a learning rate", None, None, site)
    sw = sweep(ctx)
    lr = sw["configured"]
    if sw["why"] == "closure":
        return CheckResult(cid, "skip", f"{type(ctx.optimizer).__name__} steps with a closure and scales its own "
                           "step (quasi-Newton direction, line search): a learning-rate sweep of one update per "
                           "learning rate says nothing about it", {"configured": lr}, None, site)
    losses, used = sw["losses"], sw["lrs"]
    if sw["why"] == "nonfinite":
        first = losses[0] if losses else None
        return CheckResult(cid, "error", f"the sweep's first loss is {first} (at lr {sw['first_lr']:.0e}, before any "
                           "real update): the loss is not finite to begin with — see initial-loss",
                           {"configured": lr}, None, site, {"lr": used, "loss": losses})
    series = {"lr": used, "loss": losses, "smoothed": sw["smoothed"], "configured": lr}
    diverged_at, suggestion = sw["diverged_at"], sw["suggested"]
    measured = {"configured": lr, "suggested": suggestion, "diverged_at": diverged_at, "points": len(losses)}
    stopped = f" ({sw['stopped']}: {PARTIAL})" if sw["stopped"] else ""
    if sw["stopped"]:
        measured["stopped"] = sw["stopped"]
    if sw["why"] == "budget":
        return CheckResult(cid, "skip", f"the sweep reached lr {used[-1]:.2g} only{stopped}: too few points for a "
                           "suggestion", measured, None, site, series)
    if sw["why"] == "diverged":
        return CheckResult(cid, "skip", f"the sweep diverged immediately; no suggestion{stopped}", measured, None,
                           site, series)
    if suggestion is None:
        return CheckResult(cid, "warn", f"the loss stayed flat over the sweep (lr {used[0]:.0e} to {used[-1]:.2g}, no "
                           f"drop of {LR_FLAT:.0%}): no learning rate to suggest — see overfit-batch{stopped}",
                           measured, None, site, series)
    series["suggestion"] = suggestion
    if ctx.zero_lr_reason():
        now = ("the learning rate is 0 at the probed step (a warmup from 0 set by hand)" if lr == 0 else
               f"the probed step is still in a warmup from 0 (lr {lr:.3g}, rising)")
        return CheckResult(cid, "skip", f"the sweep's steepest descent is at {suggestion:.3g}, but {now}: nothing to "
                           f"judge — probe a step past the warmup with --step N{stopped}", measured, None, site,
                           series)
    expected = [suggestion / 300, 3 * suggestion]
    verdict = judge_lr(sw)
    other = _gradient_flow_agreement(ctx, verdict)
    if verdict == "high" and diverged_at is not None and lr >= diverged_at:
        message = (f"the configured learning rate {lr:.3g} is at or past the point where the sweep diverges "
                   f"({diverged_at:.3g}); the steepest descent is at {suggestion:.3g}")
    elif verdict == "high":
        message = (f"the configured learning rate {lr:.3g} is {lr / suggestion:.0f}× the steepest descent of the "
                   f"sweep ({suggestion:.3g}): probably too high")
    elif verdict == "low":
        message = (f"the configured learning rate {lr:.3g} is over 300× below the steepest descent of the sweep "
                   f"({suggestion:.3g}): training will be slow")
    elif lr < suggestion / 300:  # "ok" only because overfit-batch memorised the batch at the configured rate
        message = (f"the configured learning rate {lr:.3g} is over 300× below the steepest descent of the sweep "
                   f"({suggestion:.3g}), but at it overfit-batch memorised the batch in {sw['memorised_in']} steps: "
                   "fast enough (a sweep on one small batch descends fastest at high rates, with Adam above all)")
    else:
        message = (f"the configured learning rate {lr:.3g} is in the useful range (steepest descent at "
                   f"{suggestion:.3g}" + (f", divergence from {diverged_at:.3g})" if diverged_at else ")"))
    return CheckResult(cid, "pass" if verdict == "ok" else "warn", message + other + stopped, measured, expected,
                       site, series)


def _memorised_in(fit: list[float] | None) -> int | None:
    """The step at which overfit-batch's curve (at the configured learning rate) fell below ``OVERFIT_FRACTION`` of
    its start, when it ran and did; None otherwise."""
    if not fit or not finite(fit[0]):
        return None
    return next((i + 1 for i, v in enumerate(fit) if finite(v) and v <= OVERFIT_FRACTION * fit[0]), None)


def _gradient_flow_agreement(ctx: ProbeContext, verdict: str | None) -> str:
    """How the sweep's verdict relates to gradient-flow's update / weight ratio, when gradient-flow measured one."""
    ratio = ctx.cache.get("update-ratio")
    if ratio is None or verdict is None:
        return ""
    value, side, steps = ratio["value"], ratio["side"], ratio["steps"]
    said = f"gradient-flow's update / weight ratio ({value:.1e}, median over {steps} steps)"
    if side == verdict:
        return f"; consistent with {said}"
    looked = "healthy" if side == "ok" else f"{'above' if side == 'high' else 'below'} the usual 1e-3"
    return f"; {said} looked {looked}, but the sweep measures the loss itself, so its verdict stands"


check = lr_range
