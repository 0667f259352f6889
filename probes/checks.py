"""The checks of DESIGN.md §3 that run inside the script's process on copies of its model.

Thresholds (each justified where it is applied):
- initial-loss: softmax cross-entropy at a sane init sits at ln C; TheDeepChecker flags a gap of ln C, we fail
  above 1.5·ln C (outputs clearly over-confident) and warn where the label prior or target mean says the output
  bias should be initialised (Karpathy's "init well").
- overfit-batch: one small batch must be memorised: pass when the loss falls below 30 % of its start.
- gradient-flow: a ReLU layer is dead at >= 70 % never-active units (AUTOTRAINER, DeepDiagnosis); healthy
  update/weight ratios sit near 1e-3 (cs231n), we warn outside (1e-4, 1e-1).
- lr-range: Lightning's ``lr_find`` sweep (1e-8 → 1, smoothing 0.98, stop at 4× the best loss).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch.overrides import TorchFunctionMode

from .context import CheckResult, ProbeContext
from .replay import iter_tensors

OVERFIT_FRACTION = 0.3
DEAD_FRACTION = 0.7
RATIO_BAND = (1e-4, 1e-1)


def _finite(x: float) -> bool:
    return x is not None and math.isfinite(x)


# -- initial-loss -------------------------------------------------------------------------------------------
def initial_loss(ctx: ProbeContext) -> CheckResult:
    info = ctx.loss
    site = ctx.sites.get("loss")
    value = info.value
    cid = "initial-loss"
    if not _finite(value):
        return CheckResult(cid, "fail", f"the very first loss is {value}: NaN/inf before any update "
                           "(check the data for NaN and the loss inputs)", value, None, site)
    if info.kind in ("cross-entropy", "nll") and info.classes:
        return _initial_classification(ctx, value, site)
    if info.kind in ("bce", "bce-logits"):
        return _initial_binary(ctx, value, site)
    if info.kind in ("mse", "l1", "smooth-l1", "huber"):
        return _initial_regression(ctx, value, site)
    return CheckResult(cid, "skip", f"loss kind '{info.kind}' has no known value at initialisation "
                       "(loss computed by hand or not recognised)", value, None, site)


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
    if prior is not None:
        entropy, n = prior
        gap = expected - entropy
        if gap > max(0.15 * expected, 3 * (c - 1) / (2 * n)):
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


# -- overfit-batch ------------------------------------------------------------------------------------------
def _probability_floor(ctx: ProbeContext) -> float | None:
    """The loss floor when probabilities (rows summing to 1) are fed to cross-entropy."""
    info = ctx.loss
    x = info.input
    if info.kind != "cross-entropy" or not isinstance(x, torch.Tensor) or x.dim() < 2 or not info.classes:
        return None
    x = x.detach().float()
    if x.min().item() < 0 or x.max().item() > 1 or (x.sum(1) - 1).abs().max().item() > 1e-3:
        return None
    c = info.classes
    return math.log(math.e + c - 1) - 1


def overfit_batch(ctx: ProbeContext) -> CheckResult:
    cid = "overfit-batch"
    site = ctx.sites.get("loop")
    losses = ctx.overfit_curve()
    k = ctx.step.sub_batch or ctx.step.batch_size
    series = {"loss": losses, "samples": k}
    start = losses[0]
    expected = f"< {OVERFIT_FRACTION:.0%} of the start ({OVERFIT_FRACTION * start:.4g}) in {ctx.steps} steps"
    last = losses[-1]
    if not _finite(last):
        return CheckResult(cid, "fail", f"the loss became {last} at step {len(losses)} while fitting one batch: "
                           "training diverges — the learning rate is too high or the loss is unstable",
                           {"start": start, "final": last, "steps": len(losses)}, expected, site, series)
    best = min(losses)
    final = sum(losses[-3:]) / len(losses[-3:])
    measured = {"start": start, "final": final, "best": best, "steps": len(losses), "samples": k}
    if final > 1.5 * start and final > start + 1e-8:
        return CheckResult(cid, "fail", f"the loss rose from {start:.4g} to {final:.4g} on one batch: training "
                           "diverges — lower the learning rate", measured, expected, site, series)
    floor = _probability_floor(ctx)
    if floor is not None and best > OVERFIT_FRACTION * start:
        c = ctx.loss.classes
        measured["floor"] = floor
        return CheckResult(
            cid, "fail",
            f"the model outputs probabilities (rows sum to 1) and CrossEntropyLoss applies softmax again: the "
            f"loss cannot go below ln(e+{c}−1)−1 = {floor:.2f} (best {best:.3f}) — drop the final softmax",
            measured, expected, ctx.sites.get("loss") or site, series,
        )
    if best <= OVERFIT_FRACTION * start or start < 1e-8:
        return CheckResult(cid, "pass", f"one batch of {k} samples is memorised: loss {start:.4g} → {best:.4g} in "
                           f"{len(losses)} steps", measured, expected, site, series)
    third = losses[(2 * len(losses)) // 3]
    if final < 0.9 * third:
        return CheckResult(
            cid, "warn",
            f"the loss is still falling slowly ({start:.4g} → {final:.4g} in {len(losses)} steps) on one batch: the "
            "learning rate may be low — rerun with more --steps to be sure", measured, expected, site, series,
        )
    return CheckResult(
        cid, "fail",
        f"the loss plateaus at {final:.4g} (start {start:.4g}) on one batch of {k} samples: the model cannot fit "
        "it — check the output layer, the loss inputs and the labels, or a learning rate far off",
        measured, expected, site, series,
    )


# -- input-independence -------------------------------------------------------------------------------------
def input_independence(ctx: ProbeContext) -> CheckResult:
    cid = "input-independence"
    site = ctx.sites.get("model")
    real = ctx.overfit_curve(cid)
    zeros = ctx.train(cid, len(real), zero_inputs=True)
    series = {"real": real, "zeros": zeros}
    grad_norm, has_float = _input_gradient(ctx)
    measured = {"real_final": _tail(real), "zeros_final": _tail(zeros), "input_grad_norm": grad_norm}
    expected = "real inputs fit clearly better than zeros; non-zero input gradient"
    if has_float and grad_norm == 0.0:
        return CheckResult(cid, "fail", "the gradient of the loss with respect to the input is exactly zero: the "
                           "model's output does not depend on its input", measured, expected, site, series)
    r, z = _tail(real), _tail(zeros)
    if not (_finite(r) and _finite(z)):
        return CheckResult(cid, "skip", "training on the batch diverged; comparison with zeroed inputs is "
                           "meaningless (see overfit-batch)", measured, expected, site, series)
    start = real[0]
    progress = start - r
    if r < 0.9 * z:
        return CheckResult(cid, "pass", f"real inputs fit the batch better than zeroed ones (loss {r:.4g} with "
                           f"real inputs vs {z:.4g} with zeros): the model uses its input", measured, expected, site,
                           series)
    if progress < 0.1 * abs(start):
        return CheckResult(cid, "warn", f"neither real nor zeroed inputs made progress (loss {r:.4g} vs {z:.4g}); "
                           "inconclusive — see overfit-batch", measured, expected, site, series)
    return CheckResult(cid, "fail", f"with inputs replaced by zeros the model fits the batch as well as with the "
                       f"real inputs (loss {z:.4g} with zeros vs {r:.4g} with real inputs): it is not using its "
                       "input", measured, expected, site, series)


def _tail(curve: list[float]) -> float:
    tail = curve[-3:]
    return sum(tail) / len(tail)


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


# -- batch-independence -------------------------------------------------------------------------------------
def batch_independence(ctx: ProbeContext) -> CheckResult:
    cid = "batch-independence"
    site = ctx.sites.get("model")
    wb = ctx.wb
    wb.reset()
    for m in wb.models:
        m.eval()
    embeds: list[torch.Tensor] = []
    handles = []
    n_holder: dict[str, int] = {}

    def embed_hook(module, args, out):
        if args and isinstance(args[0], torch.Tensor) and not args[0].is_floating_point() \
                and isinstance(out, torch.Tensor) and out.requires_grad:
            out.retain_grad()
            embeds.append(out)

    for m in wb.models:
        for mod in m.modules():
            if isinstance(mod, torch.nn.Embedding):
                handles.append(mod.register_forward_hook(embed_hook))
    try:
        result = ctx.step.run(wb, sub=True, grad_inputs=True)
    finally:
        for h in handles:
            h.remove()
    inputs = [t for t in result.model_inputs if t.dim() > 0]
    n = inputs[0].shape[0] if inputs else (ctx.step.sub_batch or ctx.step.batch_size)
    n_holder["n"] = n
    if n < 2:
        wb.reset()
        return CheckResult(cid, "skip", "the batch holds a single sample", None, None, site)
    out = next((t for t in iter_tensors(result.model_outputs[::-1]) if t.dim() > 0 and t.shape[0] == n
                and t.is_floating_point() and t.requires_grad), None)
    if out is None:
        wb.reset()
        return CheckResult(cid, "skip", "no model output has the batch as its first dimension", None, None, site)
    probes = [t for t in inputs if t.shape[0] == n]
    probes += [e for e in embeds if e.dim() > 0 and e.shape[0] == n][:1]
    if not probes:
        wb.reset()
        return CheckResult(cid, "skip", "inputs are integer and no embedding layer was found to take the gradient "
                           "at", None, None, site)
    i = n // 2
    gen = torch.Generator(device="cpu").manual_seed(0)
    w = torch.randn(out[i].shape, generator=gen).to(out.device, out.dtype)
    (out[i] * w).sum().backward()
    per_sample = torch.zeros(n, dtype=torch.float64)
    for t in probes:
        g = t.grad
        if g is not None:
            per_sample += g.detach().double().abs().reshape(n, -1).amax(1).cpu()
    wb.reset()
    own = float(per_sample[i])
    others = torch.cat([per_sample[:i], per_sample[i + 1:]])
    leak = float(others.max())
    series = {"grad_per_sample": per_sample.tolist(), "probed_sample": i}
    measured = {"max_grad_other_samples": leak, "grad_own_sample": own}
    if leak > 1e-6 * max(own, 1e-30) and leak > 0:
        leaking = [j for j in range(n) if j != i and per_sample[j] > 1e-6 * max(own, 1e-30)]
        return CheckResult(
            cid, "fail",
            f"in eval mode, the output of sample {i} depends on {len(leaking)} other sample(s) of the batch: "
            "something mixes samples across the batch dimension (e.g. x.view(features, batch).t() instead of "
            "x.view(batch, features), or a reduction over dim 0)", measured, 0.0, site, series,
        )
    if own == 0:
        return CheckResult(cid, "warn", f"the output of sample {i} does not depend on its own input (see "
                           "input-independence)", measured, 0.0, site, series)
    return CheckResult(cid, "pass", f"sample {i}'s output depends only on its own input ({n} samples probed)",
                       measured, 0.0, site, series)


# -- gradient-flow ------------------------------------------------------------------------------------------
class _ReluWatch(TorchFunctionMode):
    def __init__(self, where: Callable[[], str]):
        super().__init__()
        self.where = where
        self.outputs: list[tuple[str, torch.Tensor]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if getattr(func, "__name__", "") in ("relu", "relu_") and isinstance(out, torch.Tensor):
            self.outputs.append((self.where(), out.detach()))
        return out


def _dead_fraction(x: torch.Tensor) -> tuple[float, int]:
    if x.dim() < 2:
        return 0.0, 0
    if x.dim() in (4, 5):
        unit_dim = 1
    else:
        unit_dim = x.dim() - 1
    active = (x > 0).transpose(0, unit_dim).reshape(x.shape[unit_dim], -1).any(1)
    return 1.0 - float(active.float().mean()), int(active.numel())


def gradient_flow(ctx: ProbeContext) -> CheckResult:
    cid = "gradient-flow"
    site = ctx.sites.get("model")
    wb = ctx.wb
    wb.reset()
    stack: list[str] = []
    handles = []
    def push(name: str):
        def hook(mod, args):
            stack.append(name)
        return hook

    def pop(mod, args, out):
        if stack:
            stack.pop()

    for m in wb.models:
        for name, mod in m.named_modules():
            handles.append(mod.register_forward_pre_hook(push(name)))
            handles.append(mod.register_forward_hook(pop))
    watch = _ReluWatch(lambda: stack[-1] if stack else "")
    try:
        with watch:
            result = ctx.step.run(wb, sub=False)
    finally:
        for h in handles:
            h.remove()
    loss = result.loss if result.loss.numel() == 1 else result.loss.float().mean()
    loss.backward()
    params = wb.parameters()
    names, norms, ratios = [], [], []
    unused, nonfinite, zero = [], [], []
    before = {}
    for name, p in params:
        if not p.requires_grad:
            continue
        if p.grad is None:
            unused.append(name)
            continue
        g = p.grad.detach()
        if not torch.isfinite(g).all():
            nonfinite.append(name)
        gn = float(g.double().norm())
        if gn == 0.0:
            zero.append(name)
        names.append(name)
        norms.append(gn)
        before[name] = p.detach().clone()
    opt = wb.optimizer
    if opt is not None and not nonfinite:
        opt.step()
        for name, p in params:
            if name in before:
                w = before[name]
                wn = float(w.double().norm())
                ratios.append(float((p.detach() - w).double().norm()) / wn if wn > 0 else float("nan"))
    wb.reset()
    dead = []
    counts: dict[str, int] = {}
    relu_names, relu_dead = [], []
    for where, out in watch.outputs:
        frac, units = _dead_fraction(out)
        if units == 0:
            continue
        counts[where] = counts.get(where, 0) + 1
        label = f"{where or 'model'}:relu{counts[where]}"
        relu_names.append(label)
        relu_dead.append(frac)
        if frac >= DEAD_FRACTION and units >= 4:
            dead.append((label, frac))
    weight_ratios = [r for (n, r) in zip(names, ratios) if _finite(r) and dict(params)[n].dim() >= 2]
    median_ratio = sorted(weight_ratios)[len(weight_ratios) // 2] if weight_ratios else None
    series = {"layers": names, "grad_norm": norms, "update_ratio": ratios, "relu": relu_names,
              "relu_dead_fraction": relu_dead}
    measured = {"median_update_ratio": median_ratio, "dead_relu_layers": [d[0] for d in dead],
                "unused_parameters": unused, "nonfinite_gradients": nonfinite, "zero_gradients": zero,
                "max_dead_fraction": max(relu_dead) if relu_dead else None}
    expected = {"update_ratio": list(RATIO_BAND), "dead_fraction": f"< {DEAD_FRACTION:.0%}"}
    if nonfinite:
        return CheckResult(cid, "fail", f"NaN/inf gradients in {', '.join(nonfinite[:4])} on the first step",
                           measured, expected, site, series)
    if names and len(zero) == len(names):
        return CheckResult(cid, "fail", "no gradient reaches any parameter (all gradients are exactly zero)",
                           measured, expected, site, series)
    if dead:
        worst = max(dead, key=lambda d: d[1])
        return CheckResult(cid, "fail", f"dead ReLUs: {worst[1]:.0%} of the units of {worst[0]} never activate on "
                           f"this batch ({len(dead)} layer(s) ≥ {DEAD_FRACTION:.0%}) — check the init, the "
                           "input scale and the learning rate", measured, expected, site, series)
    if unused:
        return CheckResult(cid, "warn", f"{len(unused)} parameter(s) get no gradient ({', '.join(unused[:4])}): "
                           "unused layers, or a graph cut by .detach()/.item()", measured, expected, site, series)
    if median_ratio is not None and not (RATIO_BAND[0] < median_ratio < RATIO_BAND[1]):
        side = "small: the learning rate is probably too low" if median_ratio <= RATIO_BAND[0] else \
            "large: the learning rate is probably too high"
        return CheckResult(cid, "warn", f"the first update changes the weights by {median_ratio:.1e} of their norm "
                           f"(median; healthy ≈ 1e-3) — too {side}", measured, expected, site, series)
    if zero:
        return CheckResult(cid, "warn", f"exactly zero gradient for {', '.join(zero[:4])}", measured, expected,
                           site, series)
    ratio_txt = f", update/weight ratio {median_ratio:.1e}" if median_ratio is not None else ""
    return CheckResult(cid, "pass", f"gradients reach all {len(names)} parameter tensors, finite{ratio_txt}, "
                       "no dead ReLU layer", measured, expected, site, series)


# -- lr-range -----------------------------------------------------------------------------------------------
def lr_range(ctx: ProbeContext) -> CheckResult:
    cid = "lr-range"
    site = ctx.sites.get("optimizer") or ctx.sites.get("loop")
    configured = ctx.configured_lrs()
    if not configured:
        return CheckResult(cid, "skip", "no optimizer with a learning rate", None, None, site)
    lr = configured[0]
    steps = max(40, ctx.steps)
    lo, hi = 1e-8, max(1.0, 10.0 * lr)
    lrs = [lo * (hi / lo) ** (i / (steps - 1)) for i in range(steps)]
    beta = 0.98
    smoothed: list[float] = []
    state = {"avg": 0.0, "best": float("inf")}

    def stop(losses: list[float]) -> bool:
        i = len(losses) - 1
        state["avg"] = beta * state["avg"] + (1 - beta) * losses[-1]
        s = state["avg"] / (1 - beta ** (i + 1))
        smoothed.append(s)
        if i > 1 and s > 4 * state["best"]:
            return True
        state["best"] = min(state["best"], s)
        return False

    losses = ctx.train(cid, steps, sub=False, lrs=lrs, stop=stop)
    n = len(smoothed)
    used = lrs[:n]
    series = {"lr": used, "loss": losses[:n], "smoothed": smoothed}
    diverged_at = used[-1] if n < steps or not _finite(losses[-1]) else None
    # Lightning: the steepest descent of the smoothed curve, skipping the first 10 points and the last one
    lo_i, hi_i = (10, n - 1) if n > 12 else (0, n)
    finite = [(i, s) for i, s in enumerate(smoothed) if _finite(s)]
    if len(finite) < 3 or hi_i - lo_i < 2:
        return CheckResult(cid, "skip", "the sweep diverged immediately; no suggestion", {"configured": lr},
                           None, site, series)
    grads = []
    for i in range(max(lo_i, 1), min(hi_i, n - 1)):
        a, b = smoothed[i - 1], smoothed[i + 1]
        if _finite(a) and _finite(b):
            grads.append(((b - a) / 2, i))
    if not grads:
        return CheckResult(cid, "skip", "no usable part of the sweep", {"configured": lr}, None, site, series)
    slope, best_i = min(grads)
    suggestion = used[best_i]
    series["suggestion"] = suggestion
    series["configured"] = lr
    low_bound = suggestion / 300
    measured = {"configured": lr, "suggested": suggestion, "diverged_at": diverged_at}
    expected = [low_bound, 3 * suggestion]
    if slope >= 0:
        return CheckResult(cid, "warn", "the loss never fell during the LR sweep on this batch; no learning rate "
                           "works — see overfit-batch", measured, expected, site, series)
    if diverged_at is not None and lr >= diverged_at:
        return CheckResult(cid, "warn", f"the configured learning rate {lr:.3g} is at or past the point where the "
                           f"sweep diverges ({diverged_at:.3g}); the steepest descent is at {suggestion:.3g}",
                           measured, expected, site, series)
    if lr > 3 * suggestion:
        return CheckResult(cid, "warn", f"the configured learning rate {lr:.3g} is {lr / suggestion:.0f}× the "
                           f"steepest descent of the sweep ({suggestion:.3g}): probably too high",
                           measured, expected, site, series)
    if lr < low_bound:
        return CheckResult(cid, "warn", f"the configured learning rate {lr:.3g} is over 300× below the steepest "
                           f"descent of the sweep ({suggestion:.3g}): training will be slow",
                           measured, expected, site, series)
    return CheckResult(cid, "pass", f"the configured learning rate {lr:.3g} is in the useful range (steepest "
                       f"descent at {suggestion:.3g}" + (f", divergence from {diverged_at:.3g})" if diverged_at
                                                         else ")"), measured, expected, site, series)


# -- data-stats ---------------------------------------------------------------------------------------------
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
            if present.numel() > 1 and t.numel() >= 2 * info.classes:
                ratio = float(present.max()) / float(present.min())
                measured["labels"]["imbalance"] = ratio
                if ratio >= 10:
                    problems.append(f"labels are strongly imbalanced in this batch (most / least frequent = "
                                    f"{ratio:.0f}×)")
    if problems:
        return CheckResult(cid, "warn", "; ".join(problems), measured, "finite, normalised inputs; balanced labels",
                           site, series)
    return CheckResult(cid, "pass", "inputs are finite and normalised" + (", labels balanced" if "labels" in measured
                                                                           else ""),
                       measured, "finite, normalised inputs; balanced labels", site, series)


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


CHECKS: dict[str, Callable[[ProbeContext], CheckResult]] = {
    "initial-loss": initial_loss,
    "overfit-batch": overfit_batch,
    "input-independence": input_independence,
    "batch-independence": batch_independence,
    "gradient-flow": gradient_flow,
    "lr-range": lr_range,
    "data-stats": data_stats,
}

