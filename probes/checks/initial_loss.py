"""initial-loss: softmax cross-entropy at a sane init sits at ln C; TheDeepChecker flags a gap of ln C, we fail
above 1.5·ln C (outputs clearly over-confident) and warn where the label prior or target mean says the output bias
should be initialised (Karpathy's "init well"). Binary losses with constant targets (GAN labels) warn from 1.25·ln 2
and fail only above 3·ln 2."""

from __future__ import annotations

import math

import torch

from ..context import CheckResult, ProbeContext, constant, finite
from .data_stats import token_targets

ID = "initial-loss"
GAN_FAIL_RATIO = 3.0  # binary loss with constant (real / fake) targets: fail only above 3x ln 2


def initial_loss(ctx: ProbeContext) -> CheckResult:
    info = ctx.loss
    site = ctx.sites.get("loss")
    value = info.value
    cid = "initial-loss"
    if not finite(value):
        return CheckResult(cid, "fail", f"the very first loss is {value}: NaN/inf before any update "
                           "(check the data for NaN and the loss inputs)", value, None, site)
    if getattr(ctx.step, "role", None) == "generator":
        return CheckResult(cid, "skip", "a GAN generator's loss is the discriminator's verdict on its samples: its "
                           "value at the start depends on the discriminator (already trained a step, here), not on "
                           "the generator's init", value, None, site)
    judged = info.kind in ("cross-entropy", "nll", "bce", "bce-logits", "mse", "l1", "smooth-l1", "huber")
    if judged and info.reduction is None:
        return CheckResult(cid, "skip", f"the loss passed to backward() is not the {info.kind} criterion alone "
                           "(other terms are added to it, as a VAE adds the KL term): it has no known value at "
                           "initialisation", value, None, site, details={"criterion": info.kind})
    if judged and info.reduction not in ("mean", "sum"):
        return CheckResult(cid, "skip", f"the {info.kind} criterion is reduced with reduction={info.reduction!r}: "
                           "no known value at initialisation", value, None, site)
    per = info.per_element()
    if info.kind in ("cross-entropy", "nll") and info.classes:
        return _summed(info, _initial_classification(ctx, per, site), "sample")
    if info.kind in ("bce", "bce-logits"):
        return _summed(info, _initial_binary(ctx, per, site), "element")
    if info.kind in ("mse", "l1", "smooth-l1", "huber"):
        return _summed(info, _initial_regression(ctx, per, site), "element")
    return CheckResult(cid, "skip", f"loss kind '{info.kind}' has no known value at initialisation "
                       "(loss computed by hand or not recognised)", value, None, site)


def _summed(info, result: CheckResult, unit: str) -> CheckResult:
    """A verdict on a reduction='sum' loss, judged per sample / element: say so, with the total."""
    if info.reduction != "sum" or not info.elements:
        return result
    result.message = (f"per {unit} (reduction='sum' over {info.elements} {unit}s, total {info.value:.4g}): "
                      + result.message)
    if isinstance(result.measured, dict):
        result.measured.update({"reduction": "sum", "total": info.value, "elements": info.elements})
    return result


def _initial_classification(ctx: ProbeContext, value: float, site) -> CheckResult:
    info = ctx.loss
    cid = "initial-loss"
    c = info.classes
    expected = math.log(c)
    if info.kind == "nll" and isinstance(info.input, torch.Tensor) and info.input.dim() >= 1:
        x = info.input.detach().float()
        dim = 1 if x.dim() > 1 else 0
        lse = torch.logsumexp(x, dim=dim)
        if lse.abs().max().item() > 1e-2:
            return CheckResult(
                cid, "fail",
                f"NLLLoss gets values that are not log-probabilities (logsumexp over classes is "
                f"{lse.mean().item():.3g}, not 0): apply log_softmax first, or use CrossEntropyLoss on logits",
                value, expected, site,
            )
    ratio = value / expected
    measured = {"loss": value, "ln_C": expected, "ratio": ratio, "classes": c}
    if ratio > 1.5:
        return CheckResult(
            cid, "fail",
            f"loss at init {value:.3f} is {ratio:.1f}× ln({c}) = {expected:.3f}: the initial predictions are "
            "confidently wrong — the final layer's weights are too large (scale them down, e.g. ×0.01)",
            measured, expected, site,
        )
    prior = _label_prior(info.target, c, info.kwargs.get("ignore_index", -100))
    tokens = isinstance(info.target, torch.Tensor) and token_targets(ctx.step.input_tensors(), info.target, c)
    if prior is not None:
        entropy, n = prior
        uneven = expected - entropy > max(0.15 * expected, 3 * (c - 1) / (2 * n))
        measured["target_entropy"] = entropy
        if tokens and uneven and 0.5 <= ratio <= 1.25:
            # next-token prediction: uneven character / word frequencies are the language, not a data problem,
            # and a uniform start (ln C) is the usual, healthy one
            measured["tokens"] = True
            return CheckResult(
                cid, "pass",
                f"loss at init {value:.3f} ≈ ln({c}) = {expected:.3f}, as for uniform predictions over the "
                f"vocabulary; the targets are tokens whose frequencies have entropy {entropy:.3f} (that is the "
                "language, not imbalance) — initialising the output bias to the log token frequencies would start "
                f"the loss there (optional)", measured, expected, site,
            )
        if not tokens and uneven:
            return CheckResult(
                cid, "warn",
                f"labels are imbalanced (their entropy is {entropy:.3f} < ln {c} = {expected:.3f}): initialise the "
                "final bias to the log class priors so the loss starts at the prior's entropy",
                measured, expected, site,
            )
    if ratio < 0.5:
        return CheckResult(
            cid, "warn",
            f"loss at init {value:.3f} is far below ln({c}) = {expected:.3f}: is the answer leaking into the "
            "inputs, or is the loss reduced over the wrong dimension?", measured, expected, site,
        )
    if ratio > 1.25:
        return CheckResult(
            cid, "warn",
            f"loss at init {value:.3f} is {ratio:.2f}× ln({c}): predictions start somewhat over-confident; a "
            "smaller final-layer init gives a cleaner start", measured, expected, site,
        )
    return CheckResult(cid, "pass", f"loss at init {value:.3f} ≈ ln({c}) = {expected:.3f}, as for uniform "
                       "predictions", measured, expected, site)


def _label_prior(target, classes: int, ignore_index: int):
    """(entropy of the label histogram, count) when the batch is large enough to say anything."""
    if not isinstance(target, torch.Tensor) or target.is_floating_point() or classes > 1000:
        return None
    t = target.detach().reshape(-1)
    t = t[(t != ignore_index) & (t >= 0) & (t < classes)]
    n = int(t.numel())
    if n < 5 * classes:
        return None
    p = torch.bincount(t.cpu(), minlength=classes).double() / n
    p = p[p > 0]
    return float(-(p * p.log()).sum()), n


def _initial_binary(ctx: ProbeContext, value: float, site) -> CheckResult:
    cid = "initial-loss"
    expected = math.log(2)
    target = ctx.loss.target
    ratio = value / expected
    measured = {"loss": value, "ln_2": expected, "ratio": ratio}
    if constant(target):
        # every target the same (a GAN's real / fake labels): the discriminator's first logits spread with its
        # init (DCGAN's N(0, 0.02) over a 512x4x4 fan-in after BatchNorm gives ~1.7x ln 2) — a warning, unless
        # far off
        measured["constant_target"] = float(target.reshape(-1)[0])
        if ratio > GAN_FAIL_RATIO:
            return CheckResult(cid, "fail", f"loss at init {value:.3f} is {ratio:.1f}× ln 2 with every target "
                               f"{measured['constant_target']:g} (GAN-style labels): the outputs start confidently "
                               "wrong — scale the final layer down", measured, expected, site)
        if ratio > 1.25:
            return CheckResult(cid, "warn", f"loss at init {value:.3f} is {ratio:.1f}× ln 2 with every target "
                               f"{measured['constant_target']:g} (GAN-style labels): the first outputs are spread "
                               "wider than a neutral start; usual for DCGAN-style inits, worth a look if it grows",
                               measured, expected, site)
    if ratio > 1.5:
        return CheckResult(cid, "fail", f"loss at init {value:.3f} is {ratio:.1f}× ln 2: the outputs start "
                           "confidently wrong — scale the final layer down", measured, expected, site)
    if isinstance(target, torch.Tensor) and target.numel() >= 20:
        p = float(target.detach().float().mean())
        if 0 < p < 1:
            h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
            measured["positive_rate"] = p
            if h < 0.8 * expected:
                bias = math.log(p / (1 - p))
                return CheckResult(
                    cid, "warn",
                    f"only {p:.1%} of the targets are positive: initialise the output bias to "
                    f"log(p/(1−p)) = {bias:.2f} so the loss starts at {h:.3f} instead of ln 2",
                    measured, h, site,
                )
    if ratio < 0.5:
        return CheckResult(cid, "warn", f"loss at init {value:.3f} is far below ln 2: check for leaking "
                           "labels", measured, expected, site)
    return CheckResult(cid, "pass", f"loss at init {value:.3f} ≈ ln 2 = {expected:.3f}", measured, expected, site)


def _initial_regression(ctx: ProbeContext, value: float, site) -> CheckResult:
    cid = "initial-loss"
    info = ctx.loss
    y = info.target
    if not isinstance(y, torch.Tensor) or not y.is_floating_point() or y.numel() < 2:
        return CheckResult(cid, "skip", "regression targets not seen", value, None, site)
    y = y.detach().double()
    mean = float(y.mean())
    if info.kind == "mse":
        ideal = float(y.var(unbiased=False))  # best constant prediction: the target mean
        at_zero = float((y ** 2).mean())  # what an output ≈ 0 gives
    else:
        med = y.median()
        ideal = float((y - med).abs().mean())
        at_zero = float(y.abs().mean())
    spread = math.sqrt(ideal) if info.kind == "mse" else ideal
    out_mean = None
    if isinstance(info.input, torch.Tensor) and info.input.is_floating_point():
        out_mean = float(info.input.detach().double().mean())
    measured = {"loss": value, "target_mean": mean, "target_spread": spread, "output_mean": out_mean,
                "loss_at_zero_output": at_zero}
    eps = 1e-12
    if value > 3 * at_zero + eps and value > 3 * ideal + eps:
        return CheckResult(cid, "fail", f"loss at init {value:.4g} is far above what a zero output gives "
                           f"({at_zero:.4g}): the outputs start much larger than the targets — scale the "
                           "final layer down", measured, ideal, site)
    if value > 1.5 * ideal + eps and abs(mean) > spread and (out_mean is None or abs(out_mean - mean) > spread):
        return CheckResult(
            cid, "warn",
            f"targets are centred at {mean:.4g} (spread {spread:.3g}) but the outputs start near "
            f"{out_mean if out_mean is not None else 0:.3g}: initialise the output bias to the target mean "
            f"({mean:.4g}); the loss would start near {ideal:.4g} instead of {value:.4g}",
            measured, ideal, site,
        )
    if value > 2 * ideal + eps:
        return CheckResult(cid, "warn", f"loss at init {value:.4g} is above twice the targets' variance "
                           f"({ideal:.4g}): the outputs start noisy; a smaller final-layer init helps",
                           measured, ideal, site)
    return CheckResult(cid, "pass", f"loss at init {value:.4g} is near the best constant prediction's "
                       f"{ideal:.4g}", measured, ideal, site)


check = initial_loss
