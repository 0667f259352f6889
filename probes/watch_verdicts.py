"""Verdicts over a watched run: pure functions of the series that ``probes/watch.py`` records.

Each verdict says the step it fired at, its evidence (a curve segment) and what to do. They are conservative —
a healthy run ends with none — and each fires at the first step where its condition holds, so evaluating a
growing run again and again (live) gives the same verdicts as evaluating it once at the end.
Standard library only: the CLI and the language server run this without torch.
"""

from __future__ import annotations

import bisect
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from statistics import median

SMOOTH = 5  # steps in the rolling median that divergence looks at
PLATEAU_WINDOW = 100  # steps without progress before a plateau fires
PLATEAU_SMOOTH = 20
RATIO_RANGE = (1e-4, 1e-1)  # healthy update / weight ratio (cs231n: about 1e-3)
SUSTAINED = 3  # consecutive sampled steps a per-layer condition must hold
# AUTOTRAINER (Zhang et al., ICSE 2021), its default thresholds: the first layer's kernel gradient norm over the
# last layer's below beta_1 = 1e-3 with the first below beta_2 = 1e-4 is a vanishing gradient; the ratio above
# beta_3 = 70 an exploding one; both only counted while the loss is not converging.
AUTOTRAINER_BETA1, AUTOTRAINER_BETA2, AUTOTRAINER_BETA3 = 1e-3, 1e-4, 70.0


def to_float(value) -> float | None:
    """A recorded number ("nan", "inf" and "-inf" included) as a float; None stays None."""
    if value is None:
        return None
    if isinstance(value, str):
        return float(value)  # float() reads "nan", "inf", "-inf"
    return float(value)


@dataclass
class Run:
    """The recorded series of one run, built record by record (the metrics file's JSON lines)."""

    steps: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    lr: list[list[float | None]] = field(default_factory=list)
    seconds: list[float | None] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    ndim: list[int] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    schedulers: list[dict] = field(default_factory=list)
    start: dict = field(default_factory=dict)
    end: dict | None = None
    optimizer: str | None = None

    def add(self, record: dict) -> None:
        kind = record.get("kind")
        if kind == "step":
            step = int(record["step"])
            if self.steps and step <= self.steps[-1]:
                return  # written twice (a flush interrupted by a stop)
            self.steps.append(step)
            self.loss.append(to_float(record.get("loss")))
            self.grad_norm.append(to_float(record.get("grad_norm")))
            self.lr.append([to_float(x) for x in record.get("lr") or []])
            self.seconds.append(record.get("seconds"))
        elif kind == "sample":
            if self.samples and record["step"] <= self.samples[-1]["step"]:
                return
            self.samples.append({"step": record["step"],
                                 **{k: [to_float(x) for x in record.get(k) or []]
                                    for k in ("grad_norm", "weight_norm", "update_ratio")}})
        elif kind == "layers":
            self.layers, self.ndim = list(record["names"]), list(record["ndim"])
            self.optimizer = record.get("optimizer")
        elif kind == "scheduler":
            self.schedulers.append({"type": record.get("type"), "watched": bool(record.get("watched"))})
        elif kind == "start":
            self.start = record
        elif kind == "end":
            self.end = record

    def extend(self, lines: Iterable[str]) -> None:
        """Add the records of complete JSON lines; a line cut short or garbled is skipped."""
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                self.add(record)

    def loss_at(self, step: int) -> float | None:
        """The loss recorded at ``step`` (or the nearest step before it)."""
        i = bisect.bisect_right(self.steps, step) - 1
        return self.loss[i] if i >= 0 else None


def _finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def _segment(run: Run, start: int, stop: int, values: list | None = None) -> dict:
    """Evidence: the loss (or ``values``) from index ``start`` to ``stop`` (inclusive), non-finite as strings."""
    start, stop = max(0, start), min(len(run.steps) - 1, stop)
    series = run.loss if values is None else values
    return {"steps": run.steps[start:stop + 1],
            "values": [json_number(v) for v in series[start:stop + 1]]}


def json_number(v):
    """A float for JSON: non-finite values as "nan", "inf" or "-inf"."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def _verdict(vid: str, step: int, message: str, advice: str, evidence: dict, criterion: str, **extra) -> dict:
    return {"id": vid, "step": step, "message": message, "advice": advice, "evidence": evidence,
            "criterion": criterion, **extra}


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


# -- the verdicts -------------------------------------------------------------------------------------------------
def non_finite(run: Run) -> dict | None:
    """The first step whose loss or global gradient norm is NaN or infinite."""
    for i, step in enumerate(run.steps):
        loss, grad = run.loss[i], run.grad_norm[i]
        bad_loss = loss is not None and not math.isfinite(loss)
        bad_grad = grad is not None and not math.isfinite(grad)
        if not (bad_loss or bad_grad):
            continue
        last = next((j for j in range(i - 1, -1, -1) if _finite(run.loss[j])), None)
        before = f" (last finite loss {_fmt(run.loss[last])} at step {run.steps[last]})" if last is not None else ""
        what = f"the loss became {loss}" if bad_loss else f"the gradient norm became {grad} (loss {_fmt(loss)})"
        return _verdict(
            "non-finite", step, f"{what} at step {step}{before}",
            "look for a log, sqrt or division of a value that can reach 0 (clamp it: x.clamp_min(1e-8); use "
            "log_softmax, logsumexp or BCEWithLogitsLoss instead of log(softmax) or log(sigmoid)), or a learning "
            "rate too high; torch.autograd.set_detect_anomaly(True) names the operation that produced it",
            _segment(run, i - 30, i), "loss or global gradient norm NaN/inf")
    return None


def _rolling_median(values: list[float], window: int) -> list[float]:
    return [median(values[max(0, i - window + 1):i + 1]) for i in range(len(values))]


def _finite_prefix(run: Run) -> list[float]:
    """The losses up to the first missing or NaN one (infinity kept: it is as diverged as it gets)."""
    out = []
    for x in run.loss:
        if x is None or math.isnan(x):
            break
        out.append(x)
    return out


def divergence(run: Run) -> dict | None:
    """The smoothed loss climbs to twice where it started and four times its best so far (positive losses)."""
    losses = _finite_prefix(run)
    if len(losses) < 2 * SMOOTH or min(losses) < 0:
        return None
    smooth = _rolling_median(losses, SMOOTH)
    initial = smooth[SMOOTH - 1]
    best, best_i = smooth[SMOOTH - 1], SMOOTH - 1
    for i in range(SMOOTH, len(smooth)):
        if smooth[i] > 2 * initial and smooth[i] > 4 * best:
            step = run.steps[i]
            rise = next((j for j in range(best_i, i + 1) if losses[j] > 2 * best), best_i)
            message = (f"the loss diverged: from its best of {_fmt(best)} (step {run.steps[best_i]}) up to "
                       f"{_fmt(smooth[i])} at step {step}, above where it started ({_fmt(initial)})")
            change = _lr_change(run, max(0, rise - 20), rise)
            if change:
                message += f"; the learning rate changed {change}"
            return _verdict("divergence", step, message,
                            "lower the learning rate (or its peak after warm-up), clip gradients "
                            "(torch.nn.utils.clip_grad_norm_) and check the loss for unbounded terms",
                            _segment(run, best_i - 10, i + 5), "5-step median loss > 2x its start and > 4x its best",
                            rise_step=run.steps[rise])
        if smooth[i] < best:
            best, best_i = smooth[i], i
    return None


def _lr_change(run: Run, start: int, stop: int) -> str:
    """How the first group's learning rate changed between two step indices ("" when it did not)."""
    for j in range(max(1, start), min(stop, len(run.lr) - 1) + 1):
        a, b = (run.lr[j - 1] or [None])[0], (run.lr[j] or [None])[0]
        if a is not None and b is not None and a > 0 and abs(b - a) > 0.5 * a:
            return f"from {_fmt(a)} to {_fmt(b)} at step {run.steps[j]}"
    return ""


def plateau(run: Run) -> dict | None:
    """No progress for PLATEAU_WINDOW steps while the loss is still near where it started and the learning rate
    is not rising (a warm-up)."""
    losses = _finite_prefix(run)
    if len(losses) < PLATEAU_WINDOW + PLATEAU_SMOOTH or min(losses) < 0:
        return None
    smooth = _rolling_median(losses, PLATEAU_SMOOTH)
    initial = smooth[PLATEAU_SMOOTH - 1]
    if initial <= 0:
        return None
    best_before = min(smooth[PLATEAU_SMOOTH - 1:PLATEAU_SMOOTH])
    for i in range(PLATEAU_SMOOTH - 1 + PLATEAU_WINDOW, len(smooth)):
        start = i - PLATEAU_WINDOW
        best_before = min(best_before, smooth[start])
        window_best = min(smooth[start + 1:i + 1])
        lr_then, lr_now = (run.lr[start] or [None])[0], (run.lr[i] or [None])[0]
        warming = lr_then is not None and lr_now is not None and lr_now > lr_then * 1.05
        if window_best >= best_before * 0.99 and smooth[i] >= 0.8 * initial and not warming:
            step = run.steps[i]
            return _verdict(
                "plateau", step,
                f"the loss has not improved for {PLATEAU_WINDOW} steps (best {_fmt(best_before)} by step "
                f"{run.steps[start]}, {_fmt(smooth[i])} at step {step}) and is still near where it started "
                f"({_fmt(initial)})",
                "the model is not learning: try a larger learning rate (an LR range test: torchsanity probe "
                "--checks lr-range), check that gradients reach the early layers and that the labels match the "
                "inputs",
                _segment(run, start, i), f"no 1% improvement of the 20-step median over {PLATEAU_WINDOW} steps, "
                "loss above 80% of its start")
    return None


def _kernels(run: Run) -> list[int]:
    return [i for i, d in enumerate(run.ndim) if d >= 2]


def _converging(run: Run, first_step: int, last_step: int) -> bool:
    """The loss fell by more than 10% between two steps (AUTOTRAINER gates gradient verdicts on this)."""
    a, b = run.loss_at(first_step), run.loss_at(last_step)
    if not _finite(a) or not _finite(b) or a <= 0:
        return False
    return b < 0.9 * a


def gradient_flow(run: Run) -> list[dict]:
    """Vanishing or exploding gradients by AUTOTRAINER's criterion on the first and last layers' kernels,
    sustained over SUSTAINED sampled steps while the loss is not converging; and a global gradient norm that grew
    a thousandfold over its start for 10 steps."""
    found: list[dict] = []
    kernels = _kernels(run)
    if len(kernels) >= 2:
        first, last = kernels[0], kernels[-1]
        streak = {"vanishing-gradients": 0, "exploding-gradients": 0}
        for n, sample in enumerate(run.samples):
            g = sample["grad_norm"]
            if len(g) <= last or not _finite(g[first]) or not _finite(g[last]) or g[last] == 0:
                streak = dict.fromkeys(streak, 0)
                continue
            rate = g[first] / g[last]
            streak["vanishing-gradients"] = streak["vanishing-gradients"] + 1 if (
                rate < AUTOTRAINER_BETA1 and g[first] < AUTOTRAINER_BETA2) else 0
            streak["exploding-gradients"] = streak["exploding-gradients"] + 1 if rate > AUTOTRAINER_BETA3 else 0
            for vid, count in streak.items():
                if count < SUSTAINED or any(v["id"] == vid for v in found):
                    continue
                since = run.samples[n - SUSTAINED + 1]["step"]
                if _converging(run, since, sample["step"]):
                    continue
                rates = [s["grad_norm"][first] / s["grad_norm"][last] for s in run.samples[n - SUSTAINED + 1:n + 1]]
                names = f"{run.layers[first]} / {run.layers[last]}"
                if vid == "vanishing-gradients":
                    message = (f"gradients vanish: the first layer's gradient norm ({run.layers[first]}: "
                               f"{_fmt(g[first])}) is {_fmt(rate)} of the last layer's ({run.layers[last]}) since "
                               f"step {since}, and the loss is not falling")
                    advice = ("use ReLU-family activations instead of sigmoid/tanh in deep stacks, a suitable "
                              "initialisation (kaiming_normal_ / xavier_uniform_), normalisation layers or residual "
                              "connections")
                    criterion = "AUTOTRAINER: ‖∇W_first‖/‖∇W_last‖ < 1e-3 and ‖∇W_first‖ < 1e-4, not converging"
                else:
                    message = (f"gradients explode: the first layer's gradient norm is {_fmt(rate)}x the last "
                               f"layer's ({names}) since step {since}, and the loss is not falling")
                    advice = ("clip gradients (torch.nn.utils.clip_grad_norm_), lower the learning rate, add "
                              "normalisation layers or a smaller initialisation")
                    criterion = "AUTOTRAINER: ‖∇W_first‖/‖∇W_last‖ > 70, not converging"
                found.append(_verdict(vid, sample["step"], message, advice,
                                      {"steps": [s["step"] for s in run.samples[n - SUSTAINED + 1:n + 1]],
                                       "values": [json_number(r) for r in rates]}, criterion,
                                      layer=run.layers[first]))
    if not any(v["id"] == "exploding-gradients" for v in found):
        taken = [(i, x) for i, x in enumerate(run.grad_norm) if x is not None]  # the norm may be on a stride
        early = [x for _, x in taken[:20] if _finite(x)]
        if len(early) >= 10 and median(early) > 0:
            base, streak = median(early), 0
            for n, (i, x) in enumerate(taken[20:], start=20):
                streak = streak + 1 if math.isinf(x) or (_finite(x) and x > 1e3 * base) else 0
                if streak >= 10:
                    found.append(_verdict(
                        "exploding-gradients", run.steps[i],
                        f"the global gradient norm grew above 1000x its early median ({_fmt(base)}) for 10 "
                        f"measurements in a row, to {_fmt(x)} at step {run.steps[i]}",
                        "clip gradients (torch.nn.utils.clip_grad_norm_) and lower the learning rate",
                        _segment(run, taken[n - 10][0], i, run.grad_norm), "global gradient norm > 1000x its "
                        "median over its first 20 measurements, 10 measurements in a row"))
                    break
    return found


def update_ratio(run: Run) -> list[dict]:
    """Layers whose update / weight ratio stays outside RATIO_RANGE for SUSTAINED sampled steps: one verdict per
    side, naming every layer out of range when it fires. Too small only counts while the loss is still above half
    of where it started (a converged model takes small steps) and the learning rate is at least a tenth of its
    peak so far (a decayed schedule is meant to)."""
    low, high = RATIO_RANGE
    found: list[dict] = []
    peak = 0.0
    streaks: dict[tuple[int, str], int] = {}
    first_loss = next((x for x in run.loss if _finite(x)), None)
    for n, sample in enumerate(run.samples):
        i = _index(run, sample["step"]) if run.steps else None
        lr = (run.lr[i] or [None])[0] if i is not None else None
        peak = max(peak, lr or 0.0)
        decayed = lr is not None and peak > 0 and lr < 0.1 * peak
        loss = run.loss[i] if i is not None else None
        learnt = _finite(first_loss) and _finite(loss) and first_loss > 0 and loss < 0.5 * first_loss
        ratios = sample["update_ratio"]
        for side in ("high", "low"):
            bad_layers = []
            for k in _kernels(run):
                r = ratios[k] if k < len(ratios) else None
                bad = _finite(r) and (r > high if side == "high" else (r < low and not decayed and not learnt))
                streaks[(k, side)] = streaks.get((k, side), 0) + 1 if bad else 0
                if streaks[(k, side)] >= SUSTAINED:
                    bad_layers.append(k)
            vid = f"update-ratio-{side}"
            if not bad_layers or any(v["id"] == vid for v in found):
                continue
            span = run.samples[n - SUSTAINED + 1:n + 1]
            worst = max(bad_layers, key=lambda k: ratios[k]) if side == "high" else min(bad_layers,
                                                                                      key=lambda k: ratios[k])
            names = ", ".join(run.layers[k] for k in bad_layers[:6]) + (
                f" and {len(bad_layers) - 6} more" if len(bad_layers) > 6 else "")
            bound = f"above {high:g}" if side == "high" else f"below {low:g}"
            message = (f"updates are too {'large' if side == 'high' else 'small'} for {len(bad_layers)} layer(s) "
                       f"({names}): ‖Δw‖/‖w‖ {bound} since step {span[0]['step']}, "
                       f"{'up' if side == 'high' else 'down'} to {_fmt(ratios[worst])} ({run.layers[worst]})")
            advice = ("lower the learning rate (healthy ratios are about 1e-3)" if side == "high" else
                      "raise the learning rate, or check that these layers' gradients are not vanishing (healthy "
                      "ratios are about 1e-3)")
            found.append(_verdict(vid, sample["step"], message, advice,
                                  {"steps": [s["step"] for s in span],
                                   "values": [json_number(s["update_ratio"][worst]) for s in span]},
                                  f"‖Δw‖/‖w‖ outside ({low:g}, {high:g}) in {SUSTAINED} sampled steps in a row" +
                                  ("" if side == "high" else ", loss above half its start, LR not decayed"),
                                  layer=run.layers[worst], layers=[run.layers[k] for k in bad_layers]))
    return found


def _index(run: Run, step: int) -> int:
    return max(0, bisect.bisect_right(run.steps, step) - 1)


def lr_never_changes(run: Run) -> dict | None:
    """A scheduler was built for the watched optimizer, the script ran to its end, and the learning rate never
    moved (ReduceLROnPlateau excepted: it only acts when the loss stalls)."""
    scheds = [s for s in run.schedulers if s["watched"] and s["type"] != "ReduceLROnPlateau"]
    if not scheds or not run.end or run.end.get("reason") not in ("finished", "exit") or len(run.steps) < 20:
        return None
    first = [lrs[0] if lrs else None for lrs in run.lr]
    if any(x != first[0] for x in first):
        return None
    names = ", ".join(sorted({s["type"] for s in scheds}))
    return _verdict(
        "lr-schedule-never-changes", run.steps[-1],
        f"a learning-rate scheduler ({names}) was created, but the learning rate stayed {_fmt(first[0])} for all "
        f"{run.steps[-1]} steps",
        "call scheduler.step() (after optimizer.step(); once per epoch for epoch-based schedulers), and check that "
        "its step_size / milestones / T_max fit the run's length",
        _segment(run, 0, len(run.steps) - 1, first), "scheduler present, learning rate constant over the whole run")


def verdicts(run: Run) -> list[dict]:
    """Every verdict that fired, in the order of the step it fired at."""
    found = [v for v in (non_finite(run), divergence(run), plateau(run), lr_never_changes(run)) if v]
    found += gradient_flow(run) + update_ratio(run)
    return sorted(found, key=lambda v: (v["step"], v["id"]))
