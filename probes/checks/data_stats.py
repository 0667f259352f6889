"""data-stats: the inputs are finite and normalised, the labels balanced (token targets of a language model
excepted); image batches come with thumbnails for the report."""

from __future__ import annotations

import torch

from ..context import CheckResult, ProbeContext

ID = "data-stats"


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
            cdim = 1 if x.dim() >= 3 else x.dim() - 1
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
        if x.dim() == 4 and x.shape[1] in (1, 3):
            series["thumbnails"] = _thumbnails(x)
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
        elif info.classes and info.classes <= 1000:
            t = y.reshape(-1)
            t = t[(t >= 0) & (t < info.classes)].cpu()
            hist = torch.bincount(t, minlength=info.classes)
            series["label_histogram"] = hist.tolist()
            measured["labels"] = {"classes": info.classes, "present": int((hist > 0).sum()), "count": int(t.numel())}
            present = hist[hist > 0]
            if _token_targets(inputs, y, info.classes):
                # a language model predicts the next token: character / word frequencies are not label imbalance
                measured["labels"]["tokens"] = True
            elif present.numel() > 1 and t.numel() >= 2 * info.classes:
                ratio = float(present.max()) / float(present.min())
                measured["labels"]["imbalance"] = ratio
                if ratio >= 10:
                    problems.append(f"labels are strongly imbalanced in this batch (most / least frequent = "
                                    f"{ratio:.0f}×)")
    if problems:
        return CheckResult(cid, "warn", "; ".join(problems), measured, "finite, normalised inputs; balanced labels",
                           site, series)
    labels = measured.get("labels") or {}
    if labels.get("tokens"):
        return CheckResult(cid, "pass", "inputs are finite; the targets are tokens of the input's vocabulary (a "
                           "language model), so their frequencies are not judged as imbalance", measured,
                           "finite, normalised inputs; balanced labels", site, series)
    return CheckResult(cid, "pass", "inputs are finite and normalised" + (", labels balanced" if "labels" in measured
                                                                           else ""),
                       measured, "finite, normalised inputs; balanced labels", site, series)


def _token_targets(inputs: list[torch.Tensor], target: torch.Tensor, classes: int) -> bool:
    """True when the inputs are token ids of the targets' vocabulary (next-token prediction)."""
    if not inputs or inputs[0].is_floating_point() or inputs[0].dtype == torch.bool or not inputs[0].numel():
        return False
    x = inputs[0]
    return not target.is_floating_point() and int(x.min()) >= 0 and int(x.max()) < classes and classes > 2


def _thumbnails(x: torch.Tensor) -> dict:
    imgs = x[:16].detach().float().cpu()
    h, w = imgs.shape[-2:]
    scale = max(h, w) / 32
    if scale > 1:
        imgs = torch.nn.functional.adaptive_avg_pool2d(imgs, (max(1, int(h / scale)), max(1, int(w / scale))))
    flat = imgs.reshape(imgs.shape[0], -1)
    lo = flat.amin(1, keepdim=True)
    hi = flat.amax(1, keepdim=True)
    norm = ((flat - lo) / (hi - lo).clamp_min(1e-12) * 255).round().to(torch.uint8)
    return {"shape": list(imgs.shape), "data": norm.reshape(-1).tolist()}


check = data_stats
