"""Verdicts over a watched run, as functions of the series that ``probes/watch.py`` records. This module holds
the verdicts on the loss and learning-rate curves, ``Judge`` (all of them, evaluated incrementally as the run grows)
and ``verdicts()`` (all of them at once); the per-layer ones are in ``watch_layer_verdicts.py``.

Each verdict says the step it fired at, its evidence (a curve segment) and what to do. They are conservative —
a healthy run ends with none — and each fires at the first step where its condition holds, judged from the data up
to that step only. Each is a scan (a generator over the run's growing series that keeps its state — running
medians, streaks, the best so far — and yields None when it has read all there is), so the live view's evaluation
every second costs only the new records, and evaluating a growing run tick by tick gives the same verdicts as
evaluating it once at the end.
Standard library only: the CLI and the language server run this without torch.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterator
from statistics import median

from .watch_layer_verdicts import (
    dead_units,
    desync,
    gradient_flow,
    input_bound,
    update_ratio,
)
from .watch_series import (
    Rolling,
    Run,
    arrivals,
    finite,
    fmt,
    json_number,
    loss_indices,
    segment,
    to_float,
    verdict,
)

__all__ = ["Judge", "Run", "json_number", "to_float", "verdicts"]

SMOOTH = 5  # steps in the median that is the starting loss
BEST_SMOOTH = 20  # steps in the rolling median that divergence follows
PLATEAU_WINDOW = 100  # steps without progress before a plateau fires
PLATEAU_SMOOTH = 20
NOISE_WINDOW = 50  # steps per window of the noisy-loss verdict
NOISE_WINDOWS = 3  # consecutive noisy windows before it fires
OVERFIT_EVALS = 2  # evaluations after the best one, all worse, before overfitting fires
EVIDENCE_AFTER = 5  # steps after a divergence shown in its evidence


def first_non_finite(run: Run, start: int = 0) -> int | None:
    """The index of the first step from ``start`` whose loss or global gradient norm is NaN or infinite."""
    for i in range(start, len(run.steps)):
        if not _ok(run.loss[i]) or not _ok(run.grad_norm[i]):
            return i
    return None


def _ok(x: float | None) -> bool:
    return x is None or math.isfinite(x)


def non_finite(run: Run, i: int) -> dict:
    """The non-finite verdict at step index ``i``, naming the module it came from when the recorder found it (the
    first module whose output became non-finite while its inputs were finite)."""
    step, loss, grad = run.steps[i], run.loss[i], run.grad_norm[i]
    last = next((j for j in range(i - 1, -1, -1) if finite(run.loss[j])), None)
    before = f" (last finite loss {fmt(run.loss[last])} at step {run.steps[last]})" if last is not None else ""
    what = f"the loss became {loss}" if not _ok(loss) else f"the gradient norm became {grad} (loss {fmt(loss)})"
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


def divergence(run: Run, judge: Judge) -> Iterator[dict | None]:
    """The 20-step median loss climbs above twice where it started (its 5-step median) and four times its best so
    far — or the 5-step median above ten and twenty times them (a blow-up by orders of magnitude); positive
    losses. The 20-step median is not moved by the spikes and dips of a noisy small-batch loss."""
    steady_of, fast_of = Rolling(BEST_SMOOTH), Rolling(SMOOTH)
    fast: list[float] = []
    initial = best = 0.0
    best_i = SMOOTH - 1
    for i in loss_indices(run):
        if i is None:
            yield None
            continue
        steady, f = steady_of.push(run.loss[i]), fast_of.push(run.loss[i])
        fast.append(f)
        if i < SMOOTH:
            initial, best = f, steady  # at index SMOOTH - 1: the start
            continue
        level = steady if steady > 2 * initial and steady > 4 * best else None
        if level is None and f > 10 * initial and f > 20 * best:
            level = f  # a blow-up by orders of magnitude: no need to wait for the 20-step median
        if level is None:
            best, best_i = (steady, i) if steady < best else (best, best_i)
            continue
        while len(run.steps) <= i + EVIDENCE_AFTER and not judge.final:
            yield None  # the evidence shows a few steps after it
        step = run.steps[i]
        rise = next((j for j in range(best_i, i + 1) if fast[j] > 2 * initial), best_i)
        message = (f"the loss diverged: from its best of {fmt(best)} (step {run.steps[best_i]}) up to "
                   f"{fmt(level)} at step {step}, above where it started ({fmt(initial)})")
        change = _lr_change(run, max(0, rise - 20), rise)
        if change:
            message += f"; the learning rate changed {change}"
        yield verdict("divergence", step, message,
                      "lower the learning rate (or its peak after warm-up), clip gradients "
                      "(torch.nn.utils.clip_grad_norm_) and check the loss for unbounded terms",
                      segment(run, best_i - 10, i + EVIDENCE_AFTER),
                      f"{BEST_SMOOTH}-step median loss > 2x the starting loss and > 4x its best so far, or "
                      f"the {SMOOTH}-step median > 10x and > 20x", rise_step=run.steps[rise])
        return


def _lr_change(run: Run, start: int, stop: int) -> str:
    """How the first group's learning rate changed between two step indices ("" when it did not)."""
    for j in range(max(1, start), min(stop, len(run.lr) - 1) + 1):
        a, b = (run.lr[j - 1] or [None])[0], (run.lr[j] or [None])[0]
        if a is not None and b is not None and a > 0 and abs(b - a) > 0.5 * a:
            return f"from {fmt(a)} to {fmt(b)} at step {run.steps[j]}"
    return ""


def plateau(run: Run, _judge: Judge) -> Iterator[dict | None]:
    """No progress for PLATEAU_WINDOW steps while the loss is still near where it started (between 80% and 150% of
    it: far above is divergence), the learning rate is not rising (a warm-up) and the loss is not swinging around
    its trend by more than half its level (that is a noisy loss)."""
    smooth_of = Rolling(PLATEAU_SMOOTH)
    smooth: list[float] = []
    initial = best_before = 0.0
    for i in loss_indices(run):
        if i is None:
            yield None
            continue
        smooth.append(smooth_of.push(run.loss[i]))
        if i == PLATEAU_SMOOTH - 1:
            initial = best_before = smooth[i]
            if initial <= 0:
                return
        if i < PLATEAU_SMOOTH - 1 + PLATEAU_WINDOW:
            continue
        start = i - PLATEAU_WINDOW
        best_before = min(best_before, smooth[start])
        window_best = min(smooth[start + 1:i + 1])
        lr_then, lr_now = (run.lr[start] or [None])[0], (run.lr[i] or [None])[0]
        warming = lr_then is not None and lr_now is not None and lr_now > lr_then * 1.05
        if window_best >= best_before * 0.99 and 0.8 * initial <= smooth[i] <= 1.5 * initial and not warming and \
                not _noisy(run.loss[start + 1:i + 1], smooth[start + 1:i + 1]):
            step = run.steps[i]
            yield verdict(
                "plateau", step,
                f"the loss has not improved for {PLATEAU_WINDOW} steps (best {fmt(best_before)} by step "
                f"{run.steps[start]}, {fmt(smooth[i])} at step {step}) and is still near where it started "
                f"({fmt(initial)})",
                "the model is not learning: try a larger learning rate (an LR range test: torchsanity probe "
                "--checks lr-range), check that gradients reach the early layers and that the labels match the "
                "inputs",
                segment(run, start, i), f"no 1% improvement of the 20-step median over {PLATEAU_WINDOW} steps, "
                "loss within 80%-150% of its start, its robust spread under half its median")
            return


def _noisy(values: list[float], trend: list[float]) -> bool:
    """The values swing around their trend by more than half their median (robust spread: 1.4826 x the median
    absolute deviation): a flat loss that noisy is the noisy-loss verdict's (a smaller step or a larger batch),
    not a plateau's (a larger learning rate)."""
    return 1.4826 * median(abs(x - t) for x, t in zip(values, trend)) > 0.5 * median(values)


def _watched_schedulers(run: Run) -> list[dict]:
    return [s for s in run.schedulers if s["watched"] and s["type"] != "ReduceLROnPlateau"]


def lr_never_changes(run: Run) -> dict | None:
    """A scheduler was built for the watched optimizer and the script never called its ``step()``, the script ran
    to its end, and the learning rate never moved (ReduceLROnPlateau excepted: it only acts when the loss stalls).
    A schedule that is stepped but whose first change lies beyond a short run is no mistake. Judged once, at the
    end."""
    scheds = _watched_schedulers(run)
    if not scheds or any(s["watched"] for s in run.schedulers_stepped) or not run.end or \
            run.end.get("reason") not in ("finished", "exit") or len(run.steps) < 20:
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
        segment(run, 0, len(run.steps) - 1, first),
        "scheduler present, its step() never called, learning rate constant over the whole run")


def lr_schedule_ends_early(run: Run, judge: Judge) -> Iterator[dict | None]:
    """A scheduler drove the learning rate down to at most 1% of its peak, and it has stayed that low for as many
    steps as it took to get there (at least 100): the schedule ended long before the run."""
    first: list[float] = []
    peak, since = 0.0, None
    for i in arrivals(run.lr):
        if i is None:
            yield None
            continue
        lr = (run.lr[i] or [None])[0]
        if lr is None:
            return
        first.append(lr)
        peak = max(peak, lr)
        if peak <= 0 or lr > 0.01 * peak:
            since = None
            continue
        if since is None:
            since = i
        low = run.steps[i] - run.steps[since]
        if since and low >= max(100, run.steps[since]):
            while not _watched_schedulers(run):  # its record may come after the steps
                if judge.final:
                    return
                yield None
            yield verdict(
                "lr-schedule-ends-early", run.steps[i],
                f"the learning-rate schedule is spent: the learning rate fell to {fmt(first[since])} (at most 1% of "
                f"its peak {fmt(peak)}) at step {run.steps[since]} and has stayed that low for {low} steps, "
                f"{fmt(lr)} now",
                "fit the schedule to the run: T_max / total_steps / step_size / milestones count scheduler.step() "
                "calls, so a scheduler meant for epochs must be stepped once per epoch, not once per batch",
                segment(run, max(0, since - 20), i, first),
                "LR <= 1% of its peak for at least as many steps as it took to get there (>= 100)")
            return


def noisy_loss(run: Run, _judge: Judge) -> Iterator[dict | None]:
    """The loss is too noisy for its trend: over NOISE_WINDOWS windows of NOISE_WINDOW steps in a row, its spread
    around an 11-step running median (1.4826 x the median absolute deviation) is above a quarter of the starting
    loss and above half the window's median, and the window's median stays at most 150% of the start (far above is
    divergence); and the median over those windows together is not 10% below the median over the (up to as many)
    windows before them (falling is progress; one noisy window's median is itself too noisy to tell)."""
    trend_of = Rolling(11)
    trend: list[float] = []
    initial = 0.0
    windows, streak = 0, 0
    for i in loss_indices(run):
        if i is None:
            yield None
            continue
        trend.append(trend_of.push(run.loss[i]))
        if i == 9:
            initial = median(run.loss[:10])
        if (i + 1) % NOISE_WINDOW:
            continue
        a, b = i + 1 - NOISE_WINDOW, i + 1
        window = run.loss[a:b]
        spread = 1.4826 * median(abs(x - t) for x, t in zip(window, trend[a:b]))
        level = median(window)
        windows += 1
        noisy = windows > 1 and spread > 0.25 * initial and spread > 0.5 * level and level <= 1.5 * initial
        streak = streak + 1 if noisy else 0
        start = b - NOISE_WINDOWS * NOISE_WINDOW
        if streak < NOISE_WINDOWS or median(run.loss[start:b]) <= 0.9 * median(
                run.loss[max(0, start - NOISE_WINDOWS * NOISE_WINDOW):start]):
            continue
        yield verdict(
            "noisy-loss", run.steps[b - 1],
            f"the loss is too noisy for its trend: over steps {run.steps[start]}–{run.steps[b - 1]} it swings by "
            f"about {fmt(spread)} around a median of {fmt(level)} (it started at {fmt(initial)}) and is not "
            "falling",
            "lower the learning rate or raise the batch size (or accumulate gradients); a learning-rate "
            "schedule that decays helps late in training",
            segment(run, start, b - 1),
            f"{NOISE_WINDOWS} windows of {NOISE_WINDOW} steps: robust spread > 25% of the starting loss and > "
            "50% of the window median, their median not 10% below that of the windows before")
        return


def _train_median(run: Run, after: int, upto: int) -> float | None:
    """The median training loss of the steps in (after, upto]."""
    lo, hi = bisect.bisect_right(run.steps, after), bisect.bisect_right(run.steps, upto)
    values = [x for x in run.loss[lo:hi] if finite(x)]
    return median(values) if values else None


def overfitting(run: Run, _judge: Judge) -> Iterator[dict | None]:
    """Validation loss rising over several evaluations while the training loss falls: OVERFIT_EVALS or more
    evaluations after the best one, all worse, the latest 10% above the best, above the one after the best and
    further above the best than any rise between two evaluations before it (a validation loss that swings — a
    small or resampled validation set, a high learning rate — swings after its best too), and the training loss
    since then 10% below what it was up to the best evaluation."""
    evals: list[dict] = []
    for n in arrivals(run.evals):
        if n is None:
            yield None
            continue
        if not finite(run.evals[n]["loss"]):
            continue
        evals.append(run.evals[n])
        k = len(evals) - 1
        if k < OVERFIT_EVALS:
            continue
        best = min(range(k + 1), key=lambda j: evals[j]["loss"])
        if k - best < OVERFIT_EVALS:
            continue
        vb, vk = evals[best]["loss"], evals[k]["loss"]
        swing = max([evals[j]["loss"] - evals[j - 1]["loss"] for j in range(1, best + 1)], default=0.0)
        if vb <= 0 or vk < 1.1 * vb or vk <= evals[best + 1]["loss"] or vk - vb <= swing:
            continue  # a rise no larger than the validation loss's swings before its best is its noise
        before = _train_median(run, evals[best - 1]["step"] if best else -1, evals[best]["step"])
        now = _train_median(run, evals[k - 1]["step"], evals[k]["step"])
        if before is None or now is None or now >= 0.9 * before:
            continue
        yield verdict(
            "overfitting", evals[k]["step"],
            f"the model is overfitting: the validation loss rose from its best of {fmt(vb)} (step "
            f"{evals[best]['step']}) to {fmt(vk)} at step {evals[k]['step']} over {k - best} evaluations, while the "
            f"training loss fell from {fmt(before)} to {fmt(now)}",
            "stop at the best evaluation (early stopping / keep that checkpoint), add data or augmentation, "
            "weight decay or dropout, or use a smaller model",
            {"steps": [e["step"] for e in evals], "values": [json_number(e["loss"]) for e in evals]},
            f">= {OVERFIT_EVALS} evaluations after the best all worse, the last > 110% of the best and above it by "
            "more than any rise before the best, training loss median down 10%", fn=evals[k].get("fn"))
        return


SCANS = (divergence, plateau, noisy_loss, overfitting, lr_schedule_ends_early, input_bound, desync, gradient_flow,
         update_ratio, dead_units)


class Judge:
    """Every verdict over a run that grows, evaluated incrementally: each ``update`` reads only what arrived since
    the one before (the scans keep their state), so watching a long run costs time in proportion to its length.
    ``final`` (or the run's ``end`` record) says no more records will come: what waited for them is judged."""

    def __init__(self):
        self.final = False
        self.found: list[dict] = []
        self.scans: list[Iterator[dict | None]] | None = None
        self.bad_at: int | None = None  # the step index of the first non-finite loss or gradient norm
        self.checked = 0  # step indices searched for it so far

    def update(self, run: Run, final: bool = False) -> list[dict]:
        """Every verdict that fired so far, in the order of the step it fired at."""
        self.final = final or run.end is not None
        if self.scans is None:
            self.scans = [scan(run, self) for scan in SCANS]
        for scan in list(self.scans):
            for found in scan:
                if found is None:
                    break
                self.found.append(found)
            else:
                self.scans.remove(scan)
        if self.bad_at is None:
            self.bad_at = first_non_finite(run, self.checked)
            self.checked = len(run.steps)
        out = list(self.found)
        if self.bad_at is not None:
            out.append(non_finite(run, self.bad_at))  # rendered anew: the module that caused it may come later
        out += [v for v in (lr_never_changes(run),) if v]
        return sorted(out, key=lambda v: (v["step"], v["id"]))


def verdicts(run: Run) -> list[dict]:
    """Every verdict that fired over the whole run, in the order of the step it fired at."""
    return Judge().update(run, final=True)
