"""generalization: after the overfitting steps on the sub-batch, samples the steps never saw (the rest of the
captured batch) must have a lower loss than at initialisation (Karpathy's recipe: what is learnt must transfer).
A held-out loss that falls in step with a slow fit (at least a fifth as much) passes; a fit too slow to halve the
training loss, with no such fall, skips; nothing transferring from a fit that did halve it is a warn; a held-out
loss that clearly rises while the training loss falls a lot is a fail (labels shuffled against the inputs, or data
without signal). Both judge a model that has learnt nothing yet: at a later training step (``--step N``, or past a
warmup) they stand only while the held-out loss is still at chance (cross-entropy near ln C), else they skip."""

from __future__ import annotations

import math

import torch

from ..budget import Budget
from ..context import CheckResult, ProbeContext, finite, scalar

ID = "generalization"
MAX_STEPS = 40
EVERY = 5  # evaluate the held-out samples at every one of the first steps, then every few steps
TRANSFER = 0.95  # something transferred when the held-out loss fell 5 % below its start at some step
FELL = 0.5  # the training loss fell "a lot" when it ends below half its start
ROSE = 1.1  # the held-out loss "clearly" rose when it ends 10 % above its start (and never fell 1 % below it)
IN_STEP = 0.2  # a slow fit transferred: the held-out loss fell 1 % and at least a fifth as much as the training loss


def _held_out_loss(ctx: ProbeContext) -> float:
    """The loss on the held-out samples, in eval mode and without gradients; the models' modes are restored."""
    wb = ctx.wb
    modes = [m.training for m in wb.models]
    try:
        for m in wb.models:
            m.eval()
        with torch.no_grad():
            return scalar(ctx.step.run(wb, held_out=True).loss)
    finally:
        for m, mode in zip(wb.models, modes):
            m.train(mode)


def generalization(ctx: ProbeContext) -> CheckResult:
    site = ctx.sites.get("loop")
    step = ctx.step
    n, k = step.batch_size, step.sub_batch
    if not k or k >= n:
        why = step.whole_batch_reason
        return CheckResult(ID, "skip", f"no held-out data: the overfitting steps use the whole batch of {n} "
                           f"sample(s) ({why or f'a batch larger than {k or n} leaves some out'})", None, None, site)
    if ctx.optimizer is None:
        return CheckResult(ID, "skip", "no optimizer holds the model's parameters", None, None, site)
    held = min(k, n - k)
    steps = min(ctx.steps, MAX_STEPS)
    held_out: list[tuple[int, float]] = []

    def watch(losses: list[float]) -> bool:  # called before each update: the held-out loss at the same weights
        i = len(losses) - 1
        if i < 2 * EVERY or i % EVERY == 0 or i == steps - 1:
            held_out.append((i, _held_out_loss(ctx)))
        return False

    budget = Budget(ID)
    train = ctx.train(ID, steps, stop=budget.stop(watch))
    result = _judge(train, held_out, k, held, site)
    if result.status in ("fail", "warn") and ctx.probed_step > 1:
        _judge_later_step(ctx, result, k)
    if budget.hit and result.status in ("warn", "skip"):  # after a budget-cut few steps: no finding, and not "slow"
        result.status = "skip"
        result.message = (f"only {len(train)} of {steps} steps fitted within the budget: too few to judge whether "
                          "the fit transfers to held-out samples")
    return budget.mark(result, len(train), steps)


def _judge_later_step(ctx: ProbeContext, result: CheckResult, k: int) -> None:
    """A fail or warn at a later training step stands only while the held-out loss is at chance; else a skip."""
    m = result.measured or {}
    start, final = m.get("held_out_start"), m.get("train_final")
    if start is None or final is None or not (finite(start) and finite(final)) or _at_chance(ctx, start):
        return
    result.status = "skip"
    result.message = (f"the model had trained for {ctx.probed_step - 1} step(s) before the probed step and its "
                      f"held-out loss is no longer at chance: that fitting {k} samples further (train "
                      f"{m['train_start']:.4g} → {final:.4g}) did not lower it ({start:.4g} → "
                      f"{m['held_out_final']:.4g}) says little about the data — this check judges a model that has "
                      "learnt nothing yet")


def _at_chance(ctx: ProbeContext, held_out_start: float) -> bool:
    """The held-out loss is still what a model that learnt nothing gives: mean cross-entropy near ln C."""
    loss = ctx.loss
    if loss.kind not in ("cross-entropy", "nll") or loss.reduction != "mean" or not loss.classes or loss.classes < 2:
        return False
    return held_out_start >= 0.9 * math.log(loss.classes)


def _judge(train: list[float], held_out: list[tuple[int, float]], k: int, held: int, site) -> CheckResult:
    """The verdict on the training curve and the held-out losses measured along it."""
    if not held_out:
        return CheckResult(ID, "warn", f"the training loss is {train[0]} at the start: nothing to judge (see "
                           "initial-loss)", {"train_start": train[0]}, None, site)
    series = {"train_loss": train, "held_out_loss": [v for _, v in held_out], "held_out_step": [i for i, _ in held_out],
              "samples": k, "held_out_samples": held}
    start, end = held_out[0][1], held_out[-1][1]
    best_step, best = min(held_out, key=lambda p: p[1])
    t0, t1 = train[0], sum(train[-3:]) / len(train[-3:])
    measured = {"held_out_start": start, "held_out_final": end, "held_out_best": best, "best_step": best_step,
                "train_start": t0, "train_final": t1, "steps": len(train), "samples": k, "held_out_samples": held}
    expected = f"held-out loss {1 - TRANSFER:.0%} below its start ({start:.4g}) at some step"
    if not (finite(start) and finite(best) and finite(t1)):
        return CheckResult(ID, "warn", f"the loss became non-finite while fitting {k} samples (train {t1}, held-out "
                           f"{end}): nothing to judge (see overfit-batch)", measured, expected, site, series)
    where = f"{held} held-out sample(s) of the captured batch"
    scale = abs(start)
    if best <= start - (1 - TRANSFER) * scale:
        later = f", {end:.4g} after {len(train)} steps as the fit memorises" if end > best else ""
        return CheckResult(ID, "pass", f"fitting {k} samples also lowered the loss on {where}: {start:.4g} → "
                           f"{best:.4g} at step {best_step}{later} (train {t0:.4g} → {t1:.4g})", measured, expected,
                           site, series)
    if best > start - 0.01 * scale and end > start + (ROSE - 1) * scale and t1 < t0 - (1 - FELL) * abs(t0):
        return CheckResult(
            ID, "fail",
            f"the training loss fell {t0:.4g} → {t1:.4g} on {k} samples while the loss on {where} only rose "
            f"({start:.4g} → {end:.4g}): what the model learns does not transfer — check that the labels match "
            "their inputs (shuffled separately?) and that the inputs carry the signal", measured, expected, site,
            series,
        )
    fell = t0 - t1
    if fell > 0 and best <= start - 0.01 * scale and start - best >= IN_STEP * fell:
        return CheckResult(ID, "pass", f"the loss on {where} fell with the training loss: {start:.4g} → {best:.4g} "
                           f"at step {best_step} while the fit of {k} samples went {t0:.4g} → {t1:.4g} in "
                           f"{len(train)} steps ({(start - best) / fell:.0%} of its fall; a slow fit, so both moved "
                           "little)", measured, expected, site, series)
    if t1 > FELL * t0:
        return CheckResult(ID, "skip", f"the fit was too slow to judge what transfers: the training loss on {k} "
                           f"samples only went {t0:.4g} → {t1:.4g} in {len(train)} steps (not halved), and the loss "
                           f"on {where} {start:.4g} → {best:.4g} at best — see overfit-batch", measured, expected,
                           site, series)
    return CheckResult(
        ID, "warn",
        f"nothing transferred: while fitting {k} samples (train {t0:.4g} → {t1:.4g}) the loss on {where} never fell "
        f"{1 - TRANSFER:.0%} below its start ({start:.4g}; best {best:.4g}, final {end:.4g}) — the labels may not "
        "match the inputs, or the data carries little signal", measured, expected, site, series,
    )


check = generalization
