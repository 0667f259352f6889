"""The probe report's charts as declarative specs for ``assets/report.js`` (see :mod:`.report_page`): one function
per check's series, each naming its axes, so that what is plotted on an axis is always what the axis says."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

Spec = dict[str, Any]


def _nums(values: Any) -> list[float | None]:
    if not isinstance(values, list):
        return []
    return [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
            for v in values]


def _points(xs: list, ys: list) -> list[dict]:
    return [{"x": x, "y": y} for x, y in zip(xs, ys) if x is not None]


def _positive(values: list[float | None]) -> bool:
    present = [v for v in values if v is not None]
    return bool(present) and all(v > 0 for v in present)


def _curve(title: str, curves: dict[str, list], *, y_title: str = "loss", x_title: str = "step") -> Spec | None:
    """Loss-like curves over steps 1, 2, …"""
    datasets = [{"label": label, "data": _points(list(range(1, len(ys) + 1)), ys)} for label, ys in curves.items() if ys]
    if not datasets:
        return None
    every = [v for ys in curves.values() for v in ys]
    return {"title": title, "type": "line", "x": {"title": x_title},
            "y": {"title": y_title, "log": _positive(every)}, "datasets": datasets}


def _bars(title: str, labels: list[str], data: list, *, label: str, y_title: str, log: bool = False,
          y_min: float | None = None, y_max: float | None = None) -> Spec | None:
    if not labels or not data:
        return None
    return {"title": title, "type": "bar", "horizontal": len(labels) > 8 or max(map(len, labels)) > 12,
            "x": {"labels": labels}, "y": {"title": y_title, "log": log and _positive(data), "min": y_min,
                                           "max": y_max}, "datasets": [{"label": label, "data": data}]}


def overfit(series: dict) -> list[Spec | None]:
    return [_curve("Overfit one batch: loss per step", {"loss": _nums(series.get("loss"))})]


def generalization(series: dict) -> list[Spec | None]:
    train = _nums(series.get("train_loss"))
    held = _nums(series.get("held_out_loss"))
    steps = _nums(series.get("held_out_step")) or [float(i + 1) for i in range(len(held))]
    if not train and not held:
        return []
    datasets = [{"label": "training batch", "data": _points(list(range(1, len(train) + 1)), train)},
                {"label": "held-out batch", "data": _points(steps, held), "radius": 3}]
    return [{"title": "Generalization: held-out vs training loss", "type": "line", "x": {"title": "step"},
             "y": {"title": "loss", "log": _positive(train + held)}, "datasets": datasets}]


def input_independence(series: dict) -> list[Spec | None]:
    return [_curve("Input independence: real vs zeroed inputs",
                   {"real inputs": _nums(series.get("real")), "zeroed inputs": _nums(series.get("zeros"))})]


def lr_range(series: dict) -> list[Spec | None]:
    lrs, smoothed, raw = _nums(series.get("lr")), _nums(series.get("smoothed")), _nums(series.get("loss"))
    if not lrs:
        return []
    shown = [v for v in smoothed if v is not None]
    datasets: list[dict] = [{"label": "smoothed loss", "data": _points(lrs, smoothed)},
                            {"label": "loss", "data": _points(lrs, raw), "line": False, "radius": 2, "color": 5}]
    y_max = None
    if shown:
        low = min(shown)
        y_max = min(max(shown), 4 * low if low > 0 else max(shown)) * 1.1  # divergence is at 4× the minimum
        at = {lr: s for lr, s in zip(lrs, smoothed) if lr is not None}
        for key, label, color, style in (("suggestion", "steepest descent", 2, "circle"),
                                         ("configured", "configured LR", 1, "triangle")):
            x = series.get(key)
            if isinstance(x, (int, float)) and x > 0:
                y = at.get(min(at, key=lambda lr: abs(math.log(lr / x)) if lr > 0 else math.inf)) if at else None
                datasets.append({"label": label, "data": [{"x": x, "y": y if y is not None else low}], "line": False,
                                 "radius": 6, "color": color, "pointStyle": style})
    return [{"title": "Learning-rate range test: loss vs learning rate", "type": "line",
             "x": {"title": "learning rate", "log": _positive(lrs)}, "y": {"title": "loss", "max": y_max},
             "datasets": datasets}]


def gradient_flow(series: dict) -> list[Spec | None]:
    layers = [str(x) for x in series.get("layers") or []]
    relu = [str(x) for x in series.get("relu") or []]
    return [
        _bars("Gradient flow: gradient norm per parameter", layers, _nums(series.get("grad_norm")),
              label="gradient norm", y_title="‖grad‖", log=True),
        _bars("Gradient flow: update / weight ratio (healthy about 1e-3)", layers, _nums(series.get("update_ratio")),
              label="update / weight", y_title="‖Δw‖ / ‖w‖", log=True),
        _bars("Gradient flow: dead ReLU fraction (fails at 70%)", relu, _nums(series.get("relu_dead_fraction")),
              label="never active", y_title="fraction", y_min=0, y_max=1),
    ]


def _per_index(title: str, key: str, probed_key: str, what: str, y_title: str) -> Callable[[dict], list]:
    def specs(series: dict) -> list[Spec | None]:
        values = _nums(series.get(key))
        probed = series.get(probed_key)
        suffix = f" (probed: {probed})" if probed is not None else ""
        return [_bars(title + suffix, [str(i) for i in range(len(values))], values, label=what, y_title=y_title)]
    return specs


def determinism(series: dict) -> list[Spec | None]:
    runs = [str(r) for r in series.get("runs") or []]
    return [_bars("Determinism: first loss in two fresh runs", runs, _nums(series.get("first_loss")),
                  label="first loss", y_title="loss")]


def data_stats(series: dict) -> list[Spec | None]:
    out: list[Spec | None] = []
    hist = _nums(series.get("label_histogram"))
    if hist:
        out.append(_bars("Data: labels in the batch", [str(i) for i in range(len(hist))], hist, label="count",
                         y_title="samples"))
    for key in sorted(k for k in series if k.endswith("_channel_mean")):
        base = key[: -len("_mean")]
        stats = {name: _nums(series.get(f"{base}_{name}")) for name in ("mean", "std", "min", "max")}
        n = len(stats["mean"])
        datasets = [{"label": name, "data": _points([float(i) for i in range(n)], values), "radius": 2 if n < 4 else 0}
                    for name, values in stats.items() if values]
        out.append({"title": f"Data: {base.replace('_channel', '')} per channel (mean, std, min, max)",
                    "type": "line", "x": {"title": "channel"}, "y": {"title": "value"}, "datasets": datasets})
    return out


CHARTS: dict[str, Callable[[dict], list]] = {
    "overfit-batch": overfit,
    "generalization": generalization,
    "input-independence": input_independence,
    "lr-range": lr_range,
    "gradient-flow": gradient_flow,
    "batch-independence": _per_index("Batch independence: input gradient at each sample", "grad_per_sample",
                                     "probed_sample", "max |∂out/∂input|", "gradient"),
    "time-independence": _per_index("Time independence: input gradient at each position", "grad_per_position",
                                    "probed_position", "max |∂out/∂input|", "gradient"),
    "determinism": determinism,
    "data-stats": data_stats,
}


def chart_specs(check: dict) -> list[Spec]:
    """The charts of one check entry (none for a check without a series or one with no chart)."""
    series = check.get("series")
    make = CHARTS.get(str(check.get("id")))
    if not isinstance(series, dict) or not series or make is None:
        return []
    return [dict(spec, check=check["id"], status=check.get("status")) for spec in make(series) if spec]
