"""Per-layer and per-process verdicts over a watched run (see ``watch_verdicts.py`` for the conventions):
vanishing / exploding gradients, update / weight ratios, dead units, an input-bound pipeline and DDP ranks
whose parameters drift apart. Each is a scan over the run's growing series, as in ``watch_verdicts.py``. Standard
library only."""

from __future__ import annotations

import math
from collections.abc import Iterator
from statistics import median
from typing import TYPE_CHECKING

from .watch_series import (
    Run,
    arrivals,
    converging,
    finite,
    fmt,
    json_number,
    segment,
    verdict,
)

if TYPE_CHECKING:
    from .watch_verdicts import Judge

RATIO_RANGE = (1e-4, 1e-1)  # healthy update / weight ratio (cs231n: about 1e-3)
SUSTAINED = 3  # consecutive sampled steps a per-layer condition must hold
# AUTOTRAINER (Zhang et al., "AUTOTRAINER: An Automatic DNN Training Problem Detection and Repair System",
# ICSE 2021), its default thresholds: the first layer's kernel gradient norm over the last layer's below
# beta_1 = 1e-3 with the first below beta_2 = 1e-4 is a vanishing gradient; the ratio above beta_3 = 70 an
# exploding one; both only counted while the loss is not converging.
AUTOTRAINER_BETA1, AUTOTRAINER_BETA2, AUTOTRAINER_BETA3 = 1e-3, 1e-4, 70.0
# DeepDiagnosis (Wardat et al., "DeepDiagnosis: Automatically Diagnosing Faults and Recommending Actionable Fixes
# in Deep Learning Programs", ICSE 2022), the thresholds of its published monitor (callback/callbacks.py in
# github.com/DeepDiagnosis/ICSE2022): a layer's gradient vanishes when its mean |gradient| is below 1e-7 (we test
# the RMS, which is never below the mean |g|, so ours is the stricter test); a ReLU layer is dead when 70% of its
# outputs are <= 0.
DEEPDIAGNOSIS_VG = 1e-7
DEEPDIAGNOSIS_DEAD = 0.7
DEAD_GROWTH = 0.25  # dead units must also have grown by this share of the layer's units since the first sample
INPUT_WINDOW = 20  # steps in the input-bound window
INPUT_MIN_WAIT = 0.005  # seconds: a data wait shorter than this per step is not worth a verdict
DESYNC_TOLERANCE = 1e-5  # relative checksum difference between ranks (identical updates give exactly 0)


def _kernels(run: Run) -> list[int]:
    return [i for i, d in enumerate(run.ndim) if d >= 2]


def gradient_flow(run: Run, judge: Judge) -> Iterator[dict | None]:
    """Vanishing or exploding gradients on the first and last layers' kernels by AUTOTRAINER's criterion (or, for
    vanishing, DeepDiagnosis'), sustained over SUSTAINED sampled steps while the loss is not converging (and, for
    vanishing, not already below half its start: a fitted model's gradients are small); and a
    global gradient norm that grew a thousandfold over its start for 10 steps. The sampled steps and the global
    norms are read in step order (at a step both have, the sample first), so exploding gradients fire once, by
    whichever criterion holds first."""
    fired: set[str] = set()
    streak = {"vanishing-gradients": 0, "exploding-gradients": 0}
    n = i = 0  # the next sample, the next step index
    taken: list[int] = []  # the step indices whose global norm was taken (it may be on a stride)
    base, norm_streak = None, 0
    ndim, layered = None, False
    while len(fired) < 2:
        if run.ndim is not ndim:  # the layers record (read again only when it changes)
            ndim, layered = run.ndim, len(_kernels(run)) >= 2
        sample = run.samples[n] if layered and n < len(run.samples) else None
        if sample is not None and (i >= len(run.steps) or sample["step"] <= run.steps[i]):
            n += 1
            found = _layer_flow(run, n - 1, streak, fired)
            if found is not None:
                fired.add(found["id"])
                yield found
            continue
        # a global norm is read once no sample can come before it (a later sample is here, or none will come)
        if "exploding-gradients" in fired or i >= len(run.steps) or not (
                sample is not None or not layered or judge.final):
            yield None
            continue
        x = run.grad_norm[i]
        i += 1
        if x is None:
            continue
        taken.append(i - 1)
        if len(taken) == 20:
            early = [run.grad_norm[j] for j in taken if finite(run.grad_norm[j])]
            base = median(early) if len(early) >= 10 and median(early) > 0 else None
        if len(taken) <= 20 or base is None:
            continue
        norm_streak = norm_streak + 1 if math.isinf(x) or (finite(x) and x > 1e3 * base) else 0
        if norm_streak >= 10:
            fired.add("exploding-gradients")
            yield verdict(
                "exploding-gradients", run.steps[i - 1],
                f"the global gradient norm grew above 1000x its early median ({fmt(base)}) for 10 "
                f"measurements in a row, to {fmt(x)} at step {run.steps[i - 1]}",
                "clip gradients (torch.nn.utils.clip_grad_norm_) and lower the learning rate",
                segment(run, taken[-11], i - 1, run.grad_norm), "global gradient norm > 1000x its "
                "median over its first 20 measurements, 10 measurements in a row")


def _layer_flow(run: Run, n: int, streak: dict[str, int], fired: set[str]) -> dict | None:
    """The gradient-flow verdict the sample ``n`` completes (AUTOTRAINER / DeepDiagnosis), if any; counts the
    streaks."""
    kernels = _kernels(run)
    first, last = kernels[0], kernels[-1]
    sample = run.samples[n]
    g = sample["grad_norm"]
    if len(g) <= last or not finite(g[first]) or not finite(g[last]) or g[last] == 0:
        for vid in streak:
            streak[vid] = 0
        return None
    rate = g[first] / g[last]
    autotrainer = rate < AUTOTRAINER_BETA1 and g[first] < AUTOTRAINER_BETA2
    rms = g[first] / math.sqrt(run.numel[first]) if len(run.numel) > first and run.numel[first] else None
    deepdiagnosis = rms is not None and rms < DEEPDIAGNOSIS_VG
    streak["vanishing-gradients"] = streak["vanishing-gradients"] + 1 if autotrainer or deepdiagnosis else 0
    streak["exploding-gradients"] = streak["exploding-gradients"] + 1 if rate > AUTOTRAINER_BETA3 else 0
    for vid, count in streak.items():
        if count < SUSTAINED or vid in fired:
            continue
        since = run.samples[n - SUSTAINED + 1]["step"]
        if converging(run, since, sample["step"]) or (vid == "vanishing-gradients" and _learnt(run, sample["step"])):
            continue
        rates = [s["grad_norm"][first] / s["grad_norm"][last] for s in run.samples[n - SUSTAINED + 1:n + 1]]
        names = f"{run.layers[first]} / {run.layers[last]}"
        if vid == "vanishing-gradients":
            message = (f"gradients vanish: the first layer's gradient norm ({run.layers[first]}: "
                       f"{fmt(g[first])}) is {fmt(rate)} of the last layer's ({run.layers[last]}) since "
                       f"step {since}, and the loss is not falling")
            advice = ("use ReLU-family activations instead of sigmoid/tanh in deep stacks, a suitable "
                      "initialisation (kaiming_normal_ / xavier_uniform_), normalisation layers or residual "
                      "connections")
            criterion = ("AUTOTRAINER: ‖∇W_first‖/‖∇W_last‖ < 1e-3 and ‖∇W_first‖ < 1e-4" if autotrainer
                         else "DeepDiagnosis: the first layer's RMS gradient < 1e-7") + \
                f", {SUSTAINED} sampled steps in a row, not converging"
        else:
            message = (f"gradients explode: the first layer's gradient norm is {fmt(rate)}x the last "
                       f"layer's ({names}) since step {since}, and the loss is not falling")
            advice = ("clip gradients (torch.nn.utils.clip_grad_norm_), lower the learning rate, add "
                      "normalisation layers or a smaller initialisation")
            criterion = "AUTOTRAINER: ‖∇W_first‖/‖∇W_last‖ > 70, not converging"
        return verdict(vid, sample["step"], message, advice,
                       {"steps": [s["step"] for s in run.samples[n - SUSTAINED + 1:n + 1]],
                        "values": [json_number(r) for r in rates]}, criterion, layer=run.layers[first])
    return None


def _learnt(run: Run, step: int) -> bool:
    """The loss at ``step`` is below half the first finite loss: a model that learnt takes small gradients (the
    gradients of a fitted model vanish because there is little left to learn)."""
    i = run.index(step)
    first = next((x for x in run.loss[:i + 1] if finite(x)), None)
    return finite(first) and finite(run.loss[i]) and first > 0 and run.loss[i] < 0.5 * first


def update_ratio(run: Run, _judge: Judge) -> Iterator[dict | None]:
    """Layers whose update / weight ratio stays outside RATIO_RANGE for SUSTAINED sampled steps: one verdict per
    side, naming every layer out of range when it fires. Too small only counts while the loss is still above half
    of where it started (a converged model takes small steps) and the learning rate is at least a tenth of its
    peak so far (a decayed schedule is meant to)."""
    low, high = RATIO_RANGE
    fired: set[str] = set()
    peak = 0.0
    streaks: dict[tuple[int, str], int] = {}
    first_loss, searched = None, 0  # the first finite loss, and how far it was looked for
    for n in arrivals(run.samples):
        if n is None:
            yield None
            continue
        sample = run.samples[n]
        i = run.index(sample["step"]) if run.steps else None
        while first_loss is None and i is not None and searched <= i:
            first_loss = run.loss[searched] if finite(run.loss[searched]) else None
            searched += 1
        lr = (run.lr[i] or [None])[0] if i is not None else None
        peak = max(peak, lr or 0.0)
        decayed = lr is not None and peak > 0 and lr < 0.1 * peak
        loss = run.loss[i] if i is not None else None
        learnt = finite(first_loss) and finite(loss) and first_loss > 0 and loss < 0.5 * first_loss
        ratios = sample["update_ratio"]
        for side in ("high", "low"):
            bad_layers = []
            for k in _kernels(run):
                r = ratios[k] if k < len(ratios) else None
                bad = finite(r) and (r > high if side == "high" else (r < low and not decayed and not learnt))
                streaks[(k, side)] = streaks.get((k, side), 0) + 1 if bad else 0
                if streaks[(k, side)] >= SUSTAINED:
                    bad_layers.append(k)
            vid = f"update-ratio-{side}"
            if not bad_layers or vid in fired:
                continue
            fired.add(vid)
            span = run.samples[n - SUSTAINED + 1:n + 1]
            worst = (max if side == "high" else min)(bad_layers, key=lambda k: ratios[k])
            names = ", ".join(run.layers[k] for k in bad_layers[:6]) + (
                f" and {len(bad_layers) - 6} more" if len(bad_layers) > 6 else "")
            bound = f"above {high:g}" if side == "high" else f"below {low:g}"
            message = (f"updates are too {'large' if side == 'high' else 'small'} for {len(bad_layers)} layer(s) "
                       f"({names}): ‖Δw‖/‖w‖ {bound} since step {span[0]['step']}, "
                       f"{'up' if side == 'high' else 'down'} to {fmt(ratios[worst])} ({run.layers[worst]})")
            advice = ("lower the learning rate (healthy ratios are about 1e-3)" if side == "high" else
                      "raise the learning rate, or check that these layers' gradients are not vanishing (healthy "
                      "ratios are about 1e-3)")
            yield verdict(vid, sample["step"], message, advice,
                          {"steps": [s["step"] for s in span],
                           "values": [json_number(s["update_ratio"][worst]) for s in span]},
                          f"‖Δw‖/‖w‖ outside ({low:g}, {high:g}) in {SUSTAINED} sampled steps in a row" +
                          ("" if side == "high" else ", loss above half its start, LR not decayed"),
                          layer=run.layers[worst], layers=[run.layers[k] for k in bad_layers])
        if len(fired) == 2:
            return


def dead_units(run: Run, _judge: Judge) -> Iterator[dict | None]:
    """ReLU-family modules whose dead units (never positive over a batch) reach DeepDiagnosis' 70% and grew by
    DEAD_GROWTH of the units since the first sample, in SUSTAINED sampled steps in a row: one verdict, naming
    every module that qualifies when it fires."""
    first: dict[str, float] = {}
    streak: dict[str, int] = {}
    history: dict[str, list[tuple[int, float]]] = {}
    for n in arrivals(run.activations):
        if n is None:
            yield None
            continue
        record = run.activations[n]
        bad = []
        for m in record["modules"]:
            dead = m.get("dead")
            if dead is None:
                continue
            name = m["name"]
            first.setdefault(name, dead)
            history.setdefault(name, []).append((record["step"], dead))
            grown = dead >= DEEPDIAGNOSIS_DEAD and dead >= first[name] + DEAD_GROWTH
            streak[name] = streak.get(name, 0) + 1 if grown else 0
            if streak[name] >= SUSTAINED:
                bad.append((name, m.get("type"), dead))
        if bad:
            name, kind, dead = max(bad, key=lambda b: b[2])
            span = history[name][-SUSTAINED - 2:]
            others = [b[0] for b in bad[:5] if b[0] != name]
            yield verdict(
                "dead-units", record["step"],
                f"dead units are growing: {dead:.0%} of the units after {name} ({kind}) never fire on a batch (it "
                f"was {first[name]:.0%} at the first sample)" + (f"; also {', '.join(others)}" if others else ""),
                "lower the learning rate, use LeakyReLU / GELU, check the initialisation (kaiming_normal_) and that "
                "inputs are normalised; a large negative bias shift kills ReLU units",
                {"steps": [s for s, _ in span], "values": [d for _, d in span]},
                f"DeepDiagnosis: >= {DEEPDIAGNOSIS_DEAD:.0%} dead, and grown by >= {DEAD_GROWTH:.0%} of the units "
                f"since the first sample, {SUSTAINED} samples in a row", layer=name, layers=[b[0] for b in bad])
            return


def input_bound(run: Run, _judge: Judge) -> Iterator[dict | None]:
    """Waiting for the DataLoader takes more than half of the step time (data wait + compute, evaluation left
    out) over INPUT_WINDOW steps — in total and in the median step — and at least INPUT_MIN_WAIT per step."""
    data = run.data_seconds
    # running sums pass over the windows that cannot qualify (a window with a gap, or clearly under half) without
    # building them
    gaps, waited, spent = [0], [0.0], [0.0]
    for i in arrivals(run.steps):
        if i is None:
            yield None
            continue
        d, c = data[i], run.compute_seconds[i]
        known = d is not None and c is not None
        gaps.append(gaps[-1] + (not known))
        waited.append(waited[-1] + (d if known else 0.0))
        spent.append(spent[-1] + (d + c if known else 0.0))
        if i < INPUT_WINDOW + 4:  # the first steps start the workers
            continue
        lo = i - INPUT_WINDOW + 1
        if gaps[i + 1] - gaps[lo] or waited[i + 1] - waited[lo] <= 0.45 * (spent[i + 1] - spent[lo]):
            continue
        pairs = [(data[j], run.compute_seconds[j]) for j in range(lo, i + 1)]
        total_data = sum(d for d, _ in pairs)
        total = sum(d + c for d, c in pairs)
        shares = [d / (d + c) for d, c in pairs if d + c > 0]
        waits = [d for d, _ in pairs]
        if total <= 0 or total_data / total <= 0.5 or median(shares) <= 0.5 or median(waits) < INPUT_MIN_WAIT:
            continue
        yield verdict(
            "input-bound", run.steps[i],
            f"the input pipeline is the bottleneck: {total_data / total:.0%} of the step time over steps "
            f"{run.steps[lo]}–{run.steps[i]} is spent waiting for the DataLoader "
            f"({fmt(median(waits) * 1e3)} ms per step, median)",
            "raise DataLoader(num_workers=...) (and persistent_workers=True, pin_memory=True on GPU), move "
            "expensive decoding / augmentation out of __getitem__ or cache it, and check for sleeps or I/O per item",
            segment(run, lo, i, data),
            f"data wait > 50% of data wait + compute over {INPUT_WINDOW} steps (total and median), median wait >= "
            f"{INPUT_MIN_WAIT * 1e3:g} ms")
        return


def desync(run: Run, judge: Judge) -> Iterator[dict | None]:
    """DDP ranks whose parameters drift apart: at two complete checksum steps in a row, some rank's per-parameter
    weight sum or norm differs from rank 0's by more than DESYNC_TOLERANCE (relative). A check waits for every
    rank's record (they come in late, copied from the other ranks' files) until the run ends."""
    streak, trail, done = 0, [], 0  # done: the checksum steps judged (or passed over) so far
    while True:
        for step in sorted(s for s in run.checksums if s > done):  # a few keys: one check every K steps
            ranks = run.checksums[step]
            world = max(int(r.get("world_size") or 1) for r in ranks.values())
            if len(ranks) < world or 0 not in ranks:
                if not judge.final:
                    break  # the other ranks' records are on their way
                done = step
                continue
            done = step
            if world < 2:
                continue
            worst = _worst(run, ranks)
            streak = streak + 1 if worst[0] > DESYNC_TOLERANCE else 0
            trail.append((step, worst[0]))
            if streak >= 2:
                diff, rank, k = worst
                layer = run.layers[k] if k is not None and k < len(run.layers) else f"parameter {k}"
                yield verdict(
                    "ranks-desynchronised", step,
                    f"DDP ranks hold different weights: rank {rank}'s {layer} differs from rank 0's by {diff:.2g} "
                    f"(relative) at step {step}, and the gap was there at the check before",
                    "every rank must apply the same averaged gradients: wrap the model in DistributedDataParallel (or "
                    "all-reduce every gradient on every rank, then divide by the world size), make sure no rank skips "
                    "the all-reduce or the optimizer step, and broadcast the initial weights (seed every rank alike)",
                    {"steps": [s for s, _ in trail[-4:]], "values": [json_number(d) for _, d in trail[-4:]]},
                    f"per-parameter weight sum or norm differing by > {DESYNC_TOLERANCE:g} relative between ranks, two "
                    "checks in a row", layer=layer, rank=rank)
                return
        yield None


def _worst(run: Run, ranks: dict[int, dict]) -> tuple[float, int | None, int | None]:
    """The largest relative checksum difference from rank 0's: (difference, rank, parameter index)."""
    base = ranks[0]
    worst: tuple[float, int | None, int | None] = (0.0, None, None)
    for rank, record in ranks.items():
        if rank == 0:
            continue
        for k, (a, b, na, nb) in enumerate(zip(base["values"], record["values"], base["norms"], record["norms"])):
            diff = _relative(a, b, na, nb, run.numel[k] if k < len(run.numel) else 1)
            if diff > worst[0]:
                worst = (diff, rank, k)
    return worst


def _relative(a, b, na, nb, numel: int) -> float:
    """How far two ranks' checksums of one parameter are apart, relative to the parameter's scale."""
    values = [a, b, na, nb]
    if any(v is None or isinstance(v, str) for v in values):
        return math.inf if any(isinstance(v, str) for v in values) else 0.0
    scale = max(abs(na), abs(nb)) * math.sqrt(max(1, numel)) + 1e-12
    return max(abs(a - b) / scale, abs(na - nb) / (max(abs(na), abs(nb)) + 1e-12))
