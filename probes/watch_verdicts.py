"""Verdicts over a watched run: pure functions of the series that ``probes/watch.py`` records. This module holds
the verdicts on the loss and learning-rate curves and ``verdicts()``, which runs them all; the per-layer ones are
in ``watch_layer_verdicts.py``.

Each verdict says the step it fired at, its evidence (a curve segment) and what to do. They are conservative —
a healthy run ends with none — and each fires at the first step where its condition holds, so evaluating a
growing run again and again (live) gives the same verdicts as evaluating it once at the end.
Standard library only: the CLI and the language server run this without torch.
"""

from __future__ import annotations

import math
from statistics import median

from .watch_layer_verdicts import (
    dead_units,
    desync,
    gradient_flow,
    input_bound,
    update_ratio,
)
from .watch_series import Run, finite, fmt, json_number, segment, to_float, verdict

__all__ = ["Run", "json_number", "to_float", "verdicts"]

SMOOTH = 5  # steps in the median that is the starting loss
BEST_SMOOTH = 20  # steps in the rolling median that divergence follows
PLATEAU_WINDOW = 100  # steps without progress before a plateau fires
PLATEAU_SMOOTH = 20
NOISE_WINDOW = 50  # steps per window of the noisy-loss verdict
NOISE_WINDOWS = 3  # consecutive noisy windows before it fires
OVERFIT_EVALS = 2  # evaluations after the best one, all worse, before overfitting fires


def non_finite(run: Run) -> dict | None:
    """The first step whose loss or global gradient norm is NaN or infinite, naming the module it came from when
    the recorder found it (the first module whose output became non-finite while its inputs were finite)."""
    for i, step in enumerate(run.steps):
        loss, grad = run.loss[i], run.grad_norm[i]
        bad_loss = loss is not None and not math.isfinite(loss)
        bad_grad = grad is not None and not math.isfinite(grad)
        if not (bad_loss or bad_grad):
            continue
        last = next((j for j in range(i - 1, -1, -1) if finite(run.loss[j])), None)
        before = f" (last finite loss {fmt(run.loss[last])} at step {run.steps[last]})" if last is not None else ""
        what = f"the loss became {loss}" if bad_loss else f"the gradient norm became {grad} (loss {fmt(loss)})"
        found = run.nonfinite or {}
        where = ""
        if found.get("module") and found.get("where") == "loss":
            where = f"; module {found['module']} ({found.get('module_type')}) is the first whose output became " \
                    "non-finite"
        elif found.get("module") or found.get("detail"):
            where = f"; {found['detail']}"
        return verdict(
            "non-finite", step, f"{what} at step {step}{before}{where}",
            "look for a log, sqrt or division of a value that can reach 0 (clamp it: x.clamp_min(1e-8); use "
            "log_softmax, logsumexp or BCEWithLogitsLoss instead of log(softmax) or log(sigmoid)), or a learning "
            "rate too high; torch.autograd.set_detect_anomaly(True) names the operation that produced it",
            segment(run, i - 30, i), "loss or global gradient norm NaN/inf",
            module=found.get("module"), module_type=found.get("module_type"))
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
    """The 20-step median loss climbs above twice where it started (its 5-step median) and four times its best so
    far — or the 5-step median above ten and twenty times them (a blow-up by orders of magnitude); positive
    losses. The 20-step median is not moved by the spikes and dips of a noisy small-batch loss."""
    losses = _finite_prefix(run)
    if len(losses) < 2 * SMOOTH or min(losses) < 0:
        return None
    steady = _rolling_median(losses, BEST_SMOOTH)
    fast = _rolling_median(losses, SMOOTH)
    initial = fast[SMOOTH - 1]
    best, best_i = steady[SMOOTH - 1], SMOOTH - 1
    for i in range(SMOOTH, len(steady)):
        level = steady[i] if steady[i] > 2 * initial and steady[i] > 4 * best else None
        if level is None and fast[i] > 10 * initial and fast[i] > 20 * best:
            level = fast[i]  # a blow-up by orders of magnitude: no need to wait for the 20-step median
        if level is not None:
            step = run.steps[i]
            rise = next((j for j in range(best_i, i + 1) if fast[j] > 2 * initial), best_i)
            message = (f"the loss diverged: from its best of {fmt(best)} (step {run.steps[best_i]}) up to "
                       f"{fmt(level)} at step {step}, above where it started ({fmt(initial)})")
            change = _lr_change(run, max(0, rise - 20), rise)
            if change:
                message += f"; the learning rate changed {change}"
            return verdict("divergence", step, message,
                           "lower the learning rate (or its peak after warm-up), clip gradients "
                           "(torch.nn.utils.clip_grad_norm_) and check the loss for unbounded terms",
                           segment(run, best_i - 10, i + 5),
                           f"{BEST_SMOOTH}-step median loss > 2x the starting loss and > 4x its best so far, or "
                           f"the {SMOOTH}-step median > 10x and > 20x",
                           rise_step=run.steps[rise])
        best, best_i = (steady[i], i) if steady[i] < best else (best, best_i)
    return None


def _lr_change(run: Run, start: int, stop: int) -> str:
    """How the first group's learning rate changed between two step indices ("" when it did not)."""
    for j in range(max(1, start), min(stop, len(run.lr) - 1) + 1):
        a, b = (run.lr[j - 1] or [None])[0], (run.lr[j] or [None])[0]
        if a is not None and b is not None and a > 0 and abs(b - a) > 0.5 * a:
            return f"from {fmt(a)} to {fmt(b)} at step {run.steps[j]}"
    return ""


def plateau(run: Run) -> dict | None:
    """No progress for PLATEAU_WINDOW steps while the loss is still near where it started (between 80% and 150% of
    it: far above is divergence) and the learning rate is not rising (a warm-up)."""
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
        if window_best >= best_before * 0.99 and 0.8 * initial <= smooth[i] <= 1.5 * initial and not warming:
            step = run.steps[i]
            return verdict(
                "plateau", step,
                f"the loss has not improved for {PLATEAU_WINDOW} steps (best {fmt(best_before)} by step "
                f"{run.steps[start]}, {fmt(smooth[i])} at step {step}) and is still near where it started "
                f"({fmt(initial)})",
                "the model is not learning: try a larger learning rate (an LR range test: torchsanity probe "
                "--checks lr-range), check that gradients reach the early layers and that the labels match the "
                "inputs",
                segment(run, start, i), f"no 1% improvement of the 20-step median over {PLATEAU_WINDOW} steps, "
                "loss within 80%-150% of its start")
    return None


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
    return verdict(
        "lr-schedule-never-changes", run.steps[-1],
        f"a learning-rate scheduler ({names}) was created, but the learning rate stayed {fmt(first[0])} for all "
        f"{run.steps[-1]} steps",
        "call scheduler.step() (after optimizer.step(); once per epoch for epoch-based schedulers), and check that "
        "its step_size / milestones / T_max fit the run's length",
        segment(run, 0, len(run.steps) - 1, first), "scheduler present, learning rate constant over the whole run")




def lr_schedule_ends_early(run: Run) -> dict | None:
    """A scheduler drove the learning rate down to at most 1% of its peak, and it has stayed that low for as many
    steps as it took to get there (at least 100): the schedule ended long before the run."""
    scheds = [s for s in run.schedulers if s["watched"] and s["type"] != "ReduceLROnPlateau"]
    if not scheds:
        return None
    first = [lrs[0] if lrs else None for lrs in run.lr]
    peak, since = 0.0, None
    for i, lr in enumerate(first):
        if lr is None:
            return None
        peak = max(peak, lr)
        if peak <= 0 or lr > 0.01 * peak:
            since = None
            continue
        if since is None:
            since = i
        low = run.steps[i] - run.steps[since]
        if since and low >= max(100, run.steps[since]):
            return verdict(
                "lr-schedule-ends-early", run.steps[i],
                f"the learning-rate schedule is spent: the learning rate fell to {fmt(first[since])} (at most 1% of "
                f"its peak {fmt(peak)}) at step {run.steps[since]} and has stayed that low for {low} steps, "
                f"{fmt(lr)} now",
                "fit the schedule to the run: T_max / total_steps / step_size / milestones count scheduler.step() "
                "calls, so a scheduler meant for epochs must be stepped once per epoch, not once per batch",
                segment(run, max(0, since - 20), i, first),
                "LR <= 1% of its peak for at least as many steps as it took to get there (>= 100)")
    return None


def noisy_loss(run: Run) -> dict | None:
    """The loss is too noisy for its trend: over NOISE_WINDOWS windows of NOISE_WINDOW steps in a row, its spread
    around an 11-step running median (1.4826 x the median absolute deviation) is above a quarter of the starting
    loss and above half the window's median, and the window's median did not fall 10% below the window before nor
    rise above 150% of the start (that is divergence)."""
    losses = _finite_prefix(run)
    if len(losses) < NOISE_WINDOW * (NOISE_WINDOWS + 1) or min(losses) < 0:
        return None
    trend = _rolling_median(losses, 11)
    initial = median(losses[:10])
    streak, previous = 0, None
    for w in range(len(losses) // NOISE_WINDOW):
        a, b = w * NOISE_WINDOW, (w + 1) * NOISE_WINDOW
        window = losses[a:b]
        spread = 1.4826 * median(abs(x - t) for x, t in zip(window, trend[a:b]))
        level = median(window)
        noisy = previous is not None and spread > 0.25 * initial and spread > 0.5 * level and \
            0.9 * previous < level <= 1.5 * initial  # falling is progress; far above the start is divergence
        previous = level
        streak = streak + 1 if noisy else 0
        if streak >= NOISE_WINDOWS:
            start = b - NOISE_WINDOWS * NOISE_WINDOW
            return verdict(
                "noisy-loss", run.steps[b - 1],
                f"the loss is too noisy for its trend: over steps {run.steps[start]}–{run.steps[b - 1]} it swings by "
                f"about {fmt(spread)} around a median of {fmt(level)} (it started at {fmt(initial)}) and is not "
                "falling",
                "lower the learning rate or raise the batch size (or accumulate gradients); a learning-rate "
                "schedule that decays helps late in training",
                segment(run, start, b - 1),
                f"{NOISE_WINDOWS} windows of {NOISE_WINDOW} steps: robust spread > 25% of the starting loss and > "
                "50% of the window median, median not falling 10%")
    return None


def _train_median(run: Run, after: int, upto: int) -> float | None:
    """The median training loss of the steps in (after, upto]."""
    values = [x for s, x in zip(run.steps, run.loss) if after < s <= upto and finite(x)]
    return median(values) if values else None


def overfitting(run: Run) -> dict | None:
    """Validation loss rising over several evaluations while the training loss falls: OVERFIT_EVALS or more
    evaluations after the best one, all worse, the latest 10% above the best and above the one after the best, and
    the training loss since then 10% below what it was up to the best evaluation."""
    evals = [e for e in run.evals if finite(e["loss"])]
    for k in range(OVERFIT_EVALS, len(evals)):
        best = min(range(k + 1), key=lambda j: evals[j]["loss"])
        if k - best < OVERFIT_EVALS:
            continue
        vb, vk = evals[best]["loss"], evals[k]["loss"]
        if vb <= 0 or vk < 1.1 * vb or vk <= evals[best + 1]["loss"]:
            continue
        before = _train_median(run, evals[best - 1]["step"] if best else -1, evals[best]["step"])
        now = _train_median(run, evals[k - 1]["step"], evals[k]["step"])
        if before is None or now is None or now >= 0.9 * before:
            continue
        return verdict(
            "overfitting", evals[k]["step"],
            f"the model is overfitting: the validation loss rose from its best of {fmt(vb)} (step "
            f"{evals[best]['step']}) to {fmt(vk)} at step {evals[k]['step']} over {k - best} evaluations, while the "
            f"training loss fell from {fmt(before)} to {fmt(now)}",
            "stop at the best evaluation (early stopping / keep that checkpoint), add data or augmentation, "
            "weight decay or dropout, or use a smaller model",
            {"steps": [e["step"] for e in evals[:k + 1]], "values": [json_number(e["loss"]) for e in evals[:k + 1]]},
            f">= {OVERFIT_EVALS} evaluations after the best all worse, the last > 110% of the best, training loss "
            "median down 10%", fn=evals[k].get("fn"))
    return None


def verdicts(run: Run) -> list[dict]:
    """Every verdict that fired, in the order of the step it fired at."""
    found = [v for v in (non_finite(run), divergence(run), plateau(run), noisy_loss(run), overfitting(run),
                         lr_never_changes(run), lr_schedule_ends_early(run), input_bound(run), desync(run)) if v]
    found += gradient_flow(run) + update_ratio(run) + dead_units(run)
    return sorted(found, key=lambda v: (v["step"], v["id"]))
