"""data-stats: the inputs (not the recurrent state handed in with them) are finite and normalised, the labels
balanced (a chi-square test against uniform over the logits' classes; token targets of a language model excepted),
regression targets near mean 0 / std 1 unless the outputs start at their scale (an image batch's thumbnails are in
the report's summary: probes/summary.py)."""

from __future__ import annotations

import math

import torch

from ..context import CheckResult, ProbeContext

ID = "data-stats"
IMBALANCE_P = 1e-3  # labels are imbalanced when a batch this uneven has less than this chance under uniform labels
REGRESSION_LOSSES = ("mse", "l1", "smooth-l1", "huber")
TARGET_CENTRE = 3.0  # a target mean beyond 3 (and beyond one std) is off-centre ...
TARGET_SPREAD = 10.0  # ... a target std above 10 or below 1/10 off-scale ...
OUTPUT_NEAR_ZERO = 0.25  # ... while the outputs' size (hypot of mean and std) is below a quarter of the targets'
EXPECTED = "finite, normalised inputs; balanced labels; regression targets near mean 0 and std 1"


def data_stats(ctx: ProbeContext) -> CheckResult:
    cid = "data-stats"
    site = ctx.sites.get("data") or ctx.sites.get("loop")
    problems: list[str] = []
    measured: dict = {}
    series: dict = {}
    inputs = ctx.step.input_tensors()
    for k, x in enumerate(inputs[:4]):
        x = x.detach()
        key = f"input{k}" if len(inputs) > 1 else "input"
        if not x.is_floating_point():
            measured[key] = {"dtype": str(x.dtype), "shape": list(x.shape), "min": int(x.min()) if x.numel() else None,
                             "max": int(x.max()) if x.numel() else None}
            continue
        xf = x.double()
        nan = int((~torch.isfinite(xf)).sum())
        fin = xf[torch.isfinite(xf)]
        stats = {"shape": list(x.shape), "mean": float(fin.mean()) if fin.numel() else None,
                 "std": float(fin.std()) if fin.numel() > 1 else None,
                 "min": float(fin.min()) if fin.numel() else None, "max": float(fin.max()) if fin.numel() else None,
                 "nonfinite": nan}
        if x.dim() >= 2:
            # channels follow the batch of an image batch (N, C, ...); a sequence-first batch has its features last
            cdim = 1 if x.dim() >= 3 and getattr(ctx.step, "batch_dim", 0) == 0 else x.dim() - 1
            per = xf.transpose(0, cdim).reshape(x.shape[cdim], -1)
            if per.shape[0] <= 256:
                series[f"{key}_channel_mean"] = per.mean(1).tolist()
                series[f"{key}_channel_std"] = per.std(1).tolist() if per.shape[1] > 1 else []
                series[f"{key}_channel_min"] = per.amin(1).tolist()
                series[f"{key}_channel_max"] = per.amax(1).tolist()
            stds = per.std(1) if per.shape[1] > 1 else None
            if stds is not None and torch.isfinite(stds).all() and stds.max() > 0:
                pos = stds[stds > 0]
                if pos.numel() > 1 and float(pos.max() / pos.min()) > 1000:
                    problems.append(f"{key} features differ in scale by {float(pos.max() / pos.min()):.0f}×")
        measured[key] = stats
        if nan:
            problems.append(f"{nan} NaN/inf value(s) in {key}")
        if stats["max"] is not None and max(abs(stats["max"]), abs(stats["min"])) > 20:
            problems.append(f"{key} is not normalised (values from {stats['min']:.3g} to {stats['max']:.3g}; "
                            "standardise to mean 0, std 1)")
        elif stats["std"] is not None and stats["std"] < 1e-6:
            problems.append(f"{key} is constant")
    targets = ctx.step.target_tensors()
    info = ctx.loss
    if targets:
        y = targets[0].detach()
        if y.is_floating_point():
            yf = y.double()
            nan = int((~torch.isfinite(yf)).sum())
            measured["target"] = {"mean": float(yf[torch.isfinite(yf)].mean()) if y.numel() else None,
                                  "std": float(yf[torch.isfinite(yf)].std()) if y.numel() > 1 else None,
                                  "nonfinite": nan}
            if nan:
                problems.append(f"{nan} NaN/inf value(s) in the targets")
            elif info.kind in REGRESSION_LOSSES:
                problem = _target_scale(yf, info.input, measured)
                if problem:
                    problems.append(problem)
        elif info.classes and info.classes <= 1000:
            t = y.reshape(-1)
            t = t[(t >= 0) & (t < info.classes)].cpu()
            hist = torch.bincount(t, minlength=info.classes)
            series["label_histogram"] = hist.tolist()
            measured["labels"] = {"classes": info.classes, "present": int((hist > 0).sum()), "count": int(t.numel())}
            present = hist[hist > 0]
            if token_targets(inputs, y, info.classes):
                # a language model predicts the next token: character / word frequencies are not label imbalance
                measured["labels"]["tokens"] = True
            elif t.numel() >= info.classes > 1:  # at least one sample expected per class
                chi2, p = chi_square_uniform(hist.tolist())
                measured["labels"].update({"imbalance": float(present.max()) / float(present.min()),
                                           "chi_square": chi2, "p_value": p})
                if p < IMBALANCE_P:
                    top = int(hist.argmax())
                    problems.append(f"labels are imbalanced in this batch: class {top} holds "
                                    f"{float(hist[top]) / t.numel():.0%} of {t.numel()} samples (chi-square "
                                    f"{chi2:.1f} on {info.classes - 1} degrees of freedom, p = {p:.2g} against "
                                    f"uniform labels over {info.classes} classes)")
    if problems:
        return CheckResult(cid, "warn", "; ".join(problems), measured, EXPECTED, site, series)
    labels = measured.get("labels") or {}
    if labels.get("tokens"):
        return CheckResult(cid, "pass", "inputs are finite; the targets are tokens of the input's vocabulary (a "
                           "language model), so their frequencies are not judged as imbalance", measured,
                           EXPECTED, site, series)
    checked = ", labels balanced" if "labels" in measured else ", targets scaled" if "output" in measured else ""
    return CheckResult(cid, "pass", "inputs are finite and normalised" + checked, measured, EXPECTED, site, series)


def _target_scale(y: torch.Tensor, output, measured: dict) -> str | None:
    """A regression target whose mean / std is far from 0 / 1 while the model's outputs start near 0: the first
    steps are spent moving the output to the targets' scale (standardise them, or start the bias at their mean)."""
    if y.numel() < 2 or not isinstance(output, torch.Tensor) or not output.is_floating_point() or not output.numel():
        return None
    out = output.detach().double()
    if not torch.isfinite(out).all():
        return None
    mean, std = float(y.mean()), float(y.std())
    out_mean, out_std = float(out.mean()), float(out.std()) if out.numel() > 1 else 0.0
    measured["output"] = {"mean": out_mean, "std": out_std}
    off_centre = abs(mean) > max(TARGET_CENTRE, std)
    off_scale = std > TARGET_SPREAD or 0 < std < 1 / TARGET_SPREAD
    target_size = math.hypot(mean, std)
    near_zero = math.hypot(out_mean, out_std) < OUTPUT_NEAR_ZERO * target_size
    if not (off_centre or off_scale) or not near_zero:
        return None
    advice = f"standardise the targets ((y − {mean:.4g}) / {std:.4g}, undone at prediction)"
    if off_centre:
        advice += f", or initialise the output layer's bias to the target mean {mean:.4g}"
    return (f"regression targets have mean {mean:.4g} and std {std:.4g} (far from 0 and 1) while the model's "
            f"outputs start near 0 (mean {out_mean:.3g}, std {out_std:.3g}): {advice}")


def chi_square_uniform(counts: list[int]) -> tuple[float, float]:
    """Pearson's chi-square statistic of ``counts`` against equal counts, and its p-value."""
    n, c = sum(counts), len(counts)
    if not n or c < 2:
        return 0.0, 1.0
    expected = n / c
    chi2 = sum((o - expected) ** 2 for o in counts) / expected
    return chi2, _upper_gamma(0.5 * (c - 1), 0.5 * chi2)


def _upper_gamma(a: float, x: float) -> float:
    """The regularised upper incomplete gamma function Q(a, x) (series below a + 1, continued fraction above)."""
    if x <= 0:
        return 1.0
    log_front = a * math.log(x) - x - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        for k in range(1, 1000):
            term *= x / (a + k)
            total += term
            if term < total * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 1000):  # Lentz's method
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        step = d * c
        h *= step
        if abs(step - 1) < 1e-15:
            break
    return math.exp(log_front) * h


def token_targets(inputs: list[torch.Tensor], target: torch.Tensor, classes: int) -> bool:
    """True when the inputs are token ids of the targets' vocabulary (next-token prediction)."""
    if not inputs or inputs[0].is_floating_point() or inputs[0].dtype == torch.bool or not inputs[0].numel():
        return False
    x = inputs[0]
    return not target.is_floating_point() and int(x.min()) >= 0 and int(x.max()) < classes and classes > 2


check = data_stats
