"""overfit-batch: one small batch must be memorised: pass when the loss falls below 30 % of its start."""

from __future__ import annotations

import math

import torch

from ..context import CheckResult, ProbeContext, finite

ID = "overfit-batch"
OVERFIT_FRACTION = 0.3


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
    cid = "overfit-batch"
    site = ctx.sites.get("loop")
    losses = ctx.overfit_curve()
    k = ctx.step.sub_batch or ctx.step.batch_size
    series = {"loss": losses, "samples": k}
    start = losses[0]
    expected = f"< {OVERFIT_FRACTION:.0%} of the start ({OVERFIT_FRACTION * start:.4g}) in {ctx.steps} steps"
    last = losses[-1]
    if not finite(last):
        return CheckResult(cid, "fail", f"the loss became {last} at step {len(losses)} while fitting one batch: "
                           "training diverges — the learning rate is too high or the loss is unstable",
                           {"start": start, "final": last, "steps": len(losses)}, expected, site, series)
    best = min(losses)
    final = sum(losses[-3:]) / len(losses[-3:])
    measured = {"start": start, "final": final, "best": best, "steps": len(losses), "samples": k}
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
                           f"{len(losses)} steps", measured, expected, site, series)
    third = losses[(2 * len(losses)) // 3]
    if final < 0.9 * third:
        return CheckResult(
            cid, "warn",
            f"the loss is still falling slowly ({start:.4g} → {final:.4g} in {len(losses)} steps) on one batch: the "
            "learning rate may be low — rerun with more --steps to be sure", measured, expected, site, series,
        )
    return CheckResult(
        cid, "fail",
        f"the loss plateaus at {final:.4g} (start {start:.4g}) on one batch of {k} samples: the model cannot fit "
        "it — check the output layer, the loss inputs and the labels, or a learning rate far off",
        measured, expected, site, series,
    )


check = overfit_batch
