"""overfit-batch: one small batch must be memorised with regularisation off: pass when the loss falls below 30 % of
its start; a fit still falling slowly is a warn, no progress or divergence a fail."""

from __future__ import annotations

import math

import torch

from ..budget import PARTIAL, Budget
from ..context import (
    OVERFIT_ESCALATION,
    OVERFIT_FRACTION,
    CheckResult,
    ProbeContext,
    finite,
    still_falling,
)

ID = "overfit-batch"


def fit_curve(ctx: ProbeContext, check: str = ID) -> tuple[list[float], str | None]:
    """The real-input overfitting curve (shared by overfit-batch and input-independence), with regularisation off:
    ``steps`` optimizer steps, continued up to ``OVERFIT_ESCALATION`` times as many while the loss is still falling
    and not yet below ``OVERFIT_FRACTION`` of its start, within overfit-batch's time budget; and the phrase saying
    that the budget cut it short (None when it did not)."""
    if "overfit" not in ctx.cache:
        n = ctx.steps
        budget = Budget(ID)

        def enough(losses: list[float]) -> bool:
            if len(losses) < n:
                return False
            if min(losses) <= OVERFIT_FRACTION * losses[0]:
                return True
            return len(losses) % n == 0 and not still_falling(losses)

        losses = ctx.train(check, OVERFIT_ESCALATION * n, stop=budget.stop(enough), plain=True)
        planned = n if len(losses) < n else OVERFIT_ESCALATION * n
        ctx.cache["overfit"] = losses
        ctx.cache["overfit-stopped"] = budget.stopped(len(losses), planned) if budget.hit else None
    return ctx.cache["overfit"], ctx.cache["overfit-stopped"]


def _probability_floor(ctx: ProbeContext) -> float | None:
    """The loss floor when probabilities (rows summing to 1) are fed to cross-entropy."""
    info = ctx.loss
    x = info.input
    if info.kind != "cross-entropy" or not isinstance(x, torch.Tensor) or x.dim() < 2 or not info.classes:
        return None
    x = x.detach().float()
    if x.min().item() < 0 or x.max().item() > 1 or (x.sum(1) - 1).abs().max().item() > 1e-3:
        return None
    c = info.classes
    return math.log(math.e + c - 1) - 1


def overfit_batch(ctx: ProbeContext) -> CheckResult:
    site = ctx.sites.get("loop")
    losses, stopped = fit_curve(ctx)
    result = _judge(ctx, losses, site)
    if stopped:
        result.measured["stopped"] = stopped
        if len(losses) >= ctx.steps:  # the escalation was cut short, not the fit itself
            result.message += f" ({stopped})"
        elif result.status != "pass" and finite(losses[-1]) and max(losses) <= 1.5 * losses[0] + 1e-8:
            # a plateau or a slow fall over the few steps the budget allowed is too short to judge the fit
            result.status = "warn"
            result.message = (f"the loss went {losses[0]:.4g} → {losses[-1]:.4g} in the {len(losses)} steps the "
                              f"budget allowed ({stopped}): too few to judge the fit — {PARTIAL}")
        else:
            result.message += f" ({stopped}: {PARTIAL})"
    return result


def _judge(ctx: ProbeContext, losses: list[float], site) -> CheckResult:
    cid = ID
    k = ctx.step.sub_batch or ctx.step.batch_size
    series = {"loss": losses, "samples": k}
    start = losses[0]
    off = ctx.regularisation_notes()
    turned_off = f" ({' and '.join(off)} turned off for the fit)" if off else ""
    expected = (f"< {OVERFIT_FRACTION:.0%} of the start ({OVERFIT_FRACTION * start:.4g}) in {ctx.steps} steps, "
                f"up to {OVERFIT_ESCALATION * ctx.steps} while still falling")
    last = losses[-1]
    if not finite(last):
        return CheckResult(cid, "fail", f"the loss became {last} at step {len(losses)} while fitting one batch: "
                           "training diverges — the learning rate is too high or the loss is unstable",
                           {"start": start, "final": last, "steps": len(losses)}, expected, site, series)
    best = min(losses)
    final = sum(losses[-3:]) / len(losses[-3:])
    measured = {"start": start, "final": final, "best": best, "steps": len(losses), "samples": k,
                "regularisation_off": off}
    if final > 1.5 * start and final > start + 1e-8:
        return CheckResult(cid, "fail", f"the loss rose from {start:.4g} to {final:.4g} on one batch: training "
                           "diverges — lower the learning rate", measured, expected, site, series)
    floor = _probability_floor(ctx)
    if floor is not None and best > OVERFIT_FRACTION * start:
        c = ctx.loss.classes
        measured["floor"] = floor
        return CheckResult(
            cid, "fail",
            f"the model outputs probabilities (rows sum to 1) and CrossEntropyLoss applies softmax again: the "
            f"loss cannot go below ln(e+{c}−1)−1 = {floor:.2f} (best {best:.3f}) — drop the final softmax",
            measured, expected, ctx.sites.get("loss") or site, series,
        )
    if best <= OVERFIT_FRACTION * start or start < 1e-8:
        return CheckResult(cid, "pass", f"one batch of {k} samples is memorised: loss {start:.4g} → {best:.4g} in "
                           f"{len(losses)} steps{turned_off}", measured, expected, site, series)
    if still_falling(losses):
        return CheckResult(
            cid, "warn",
            f"the loss is still falling slowly ({start:.4g} → {final:.4g} in {len(losses)} steps) on one batch"
            f"{turned_off}: the learning rate may be low — rerun with more --steps to be sure", measured, expected,
            site, series,
        )
    if start - best >= 0.1 * abs(start) and ctx.loss.kind == "unknown":
        return CheckResult(
            cid, "skip",
            f"the loss fell from {start:.4g} to {final:.4g} in {len(losses)} steps on one batch of {k} samples"
            f"{turned_off}, then levelled off; it is computed by hand, so its minimum is unknown (a contrastive loss "
            "with a temperature, for one, cannot fall near 0): whether the batch is memorised cannot be told — see "
            "the curve", measured, expected, site, series,
        )
    if start - best >= 0.1 * abs(start):
        return CheckResult(
            cid, "warn",
            f"the loss fell from {start:.4g} to {final:.4g} in {len(losses)} steps on one batch of {k} samples"
            f"{turned_off}, then levelled off above {OVERFIT_FRACTION:.0%} of its start: the fit is slow or the model "
            "too small to memorise it — see the curve", measured, expected, site, series,
        )
    return CheckResult(
        cid, "fail",
        f"the loss plateaus at {final:.4g} (start {start:.4g}) on one batch of {k} samples{turned_off}: the model "
        "cannot fit it — check the output layer, the loss inputs and the labels, or a learning rate far off",
        measured, expected, site, series,
    )


check = overfit_batch
