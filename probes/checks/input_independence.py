"""input-independence: the model must fit one batch clearly better from its real inputs than from zeros, and the
loss must have a non-zero gradient with respect to the input."""

from __future__ import annotations

import torch

from ..budget import PARTIAL, Budget
from ..context import CheckResult, ProbeContext, constant, finite
from .overfit_batch import fit_curve

ID = "input-independence"


def input_independence(ctx: ProbeContext) -> CheckResult:
    cid = ID
    site = ctx.sites.get("model")
    same = _same_targets(ctx)
    if same is not None:
        return CheckResult(cid, "skip", f"every target in the {same[1]} samples fitted is {same[0]:g}: zeroed inputs "
                           "fit that as well as real ones, so the comparison says nothing", None, None, site)
    real, real_stopped = fit_curve(ctx, cid)
    budget = Budget(cid)
    zeros = ctx.train(cid, len(real), zero_inputs=True, plain=True, stop=budget.stop())
    series = {"real": real, "zeros": zeros}
    if budget.hit and len(zeros) < len(real):
        real = real[:len(zeros)]  # compared at the same step
    stopped = real_stopped if real_stopped and len(real) < ctx.steps else None
    stopped = budget.stopped(len(zeros), len(series["real"])) if budget.hit else stopped
    result = _judge(ctx, real, zeros, series, site, partial=stopped is not None)
    if stopped:
        result.message += f" ({stopped}: {PARTIAL})"
        result.measured["stopped"] = stopped
    return result


def _judge(ctx: ProbeContext, real: list[float], zeros: list[float], series: dict, site, *,
           partial: bool) -> CheckResult:
    """The verdict on the two curves; ``partial``: a budget cut them short, so "fits as well as with zeros" is a
    warn, not proven."""
    cid = ID
    grad_norm, has_float = _input_gradient(ctx)
    measured = {"real_final": _tail(real), "zeros_final": _tail(zeros), "input_grad_norm": grad_norm}
    expected = "real inputs fit clearly better than zeros; non-zero input gradient"
    if has_float and grad_norm == 0.0:
        return CheckResult(cid, "fail", "the gradient of the loss with respect to the input is exactly zero: the "
                           "model's output does not depend on its input", measured, expected, site, series)
    r, z = _tail(real), _tail(zeros)
    if _diverged(real) and _diverged(zeros):
        return CheckResult(cid, "fail", f"training on one batch diverges with real inputs (loss {real[0]:.4g} → "
                           f"{r:.4g}) and with zeroed inputs (→ {z:.4g}): the run is unstable — lower the learning "
                           "rate (see overfit-batch); the comparison cannot tell whether the model uses its input",
                           measured, expected, site, series)
    if not (finite(r) and finite(z)):
        return CheckResult(cid, "skip", "training on the batch diverged; comparison with zeroed inputs is "
                           "meaningless (see overfit-batch)", measured, expected, site, series)
    start = real[0]
    progress = start - r
    if progress < 0.1 * abs(start):
        return CheckResult(cid, "skip", f"the fit moved too little to compare: in {len(real)} steps the loss went "
                           f"{start:.4g} → {r:.4g} with real inputs and → {z:.4g} with zeroed ones (under 10 % of its "
                           "start) — see overfit-batch", measured, expected, site, series)
    if r < 0.9 * z:
        return CheckResult(cid, "pass", f"real inputs fit the batch better than zeroed ones (loss {r:.4g} with "
                           f"real inputs vs {z:.4g} with zeros): the model uses its input", measured, expected, site,
                           series)
    return CheckResult(cid, "warn" if partial else "fail", f"with inputs replaced by zeros the model fits the batch "
                       f"as well as with the real inputs (loss {z:.4g} with zeros vs {r:.4g} with real inputs): it is "
                       "not using its input", measured, expected, site, series)


def _same_targets(ctx: ProbeContext) -> tuple[float, int] | None:
    """(the value, the sample count) when every target of the fitted sub-batch is the same."""
    step = ctx.step
    y = step.target_batch()
    if y is None:
        return None
    k = step.sub_batch
    if k is not None:
        y = y[step.sub_start:step.sub_start + k]
    if not constant(y):
        return None
    return float(y.reshape(-1)[0]), k or step.batch_size


def _tail(curve: list[float]) -> float:
    tail = curve[-3:]
    return sum(tail) / len(tail)


def _diverged(curve: list[float]) -> bool:
    """The loss became non-finite or rose far (50 %) above its start."""
    end = _tail(curve)
    return not finite(end) or end > curve[0] + 0.5 * abs(curve[0]) + 1e-8


def _input_gradient(ctx: ProbeContext) -> tuple[float | None, bool]:
    wb = ctx.wb
    wb.reset()
    result = ctx.step.run(wb, sub=True, grad_inputs=True)
    inputs = [t for t in result.model_inputs if t.is_floating_point()]
    if not inputs:
        wb.reset()
        return None, False
    loss = result.loss if result.loss.numel() == 1 else result.loss.float().mean()
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    total = 0.0
    for g in grads:
        if g is not None:
            total += float(g.detach().double().norm())
    wb.reset()
    return total, True


check = input_independence
