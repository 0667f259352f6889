"""Per-module views of a watched run: activation statistics on sampled steps (forward hooks that live for one
forward pass), the first convolution's filters, and the search for the module that first produced a non-finite
value (a side-effect-free replay of the last forward pass)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .watch_series import json_number as number

HIST_BINS = 20
MAX_MODULES = 64  # the most modules whose activations one sampled step records
MAX_FILTERS = 32
SAMPLE_VALUES = 1 << 14  # the most values of one output the activation statistics read
RELU_LIKE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU,
             nn.Mish, nn.Hardswish)
SATURATING = (nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Hardsigmoid)
LAYERS = (nn.Linear, nn.Bilinear, nn.modules.conv._ConvNd)


def watched_modules(roots: list[nn.Module]) -> list[tuple[str, nn.Module]]:
    """The modules whose outputs a sampled step records: activation modules, or the parameterised layers when the
    model has none (activations as functions), at most MAX_MODULES spread evenly over the model."""
    named: list[tuple[str, nn.Module]] = []
    for root in roots:
        named += [(n, m) for n, m in root.named_modules() if n and not any(True for _ in m.children())]
    chosen = [(n, m) for n, m in named if isinstance(m, RELU_LIKE + SATURATING)]
    if not chosen:
        chosen = [(n, m) for n, m in named if isinstance(m, LAYERS)]
    if len(chosen) > MAX_MODULES:
        stride = len(chosen) / MAX_MODULES
        chosen = [chosen[int(i * stride)] for i in range(MAX_MODULES)]
    return chosen


def _stats(module: nn.Module, y: torch.Tensor) -> torch.Tensor:
    """mean, std, fraction zero, fraction saturated (or nan), fraction of dead units (or nan), min, max, then the
    histogram counts: one float64 vector, so a flush turns it into numbers with one synchronisation. The value
    statistics read an evenly strided sample of at most SAMPLE_VALUES values; dead units read the whole output
    (one max-reduction)."""
    y = y.detach()
    flat = y.reshape(-1)
    if flat.numel() > SAMPLE_VALUES:
        flat = flat[::flat.numel() // SAMPLE_VALUES]
    flat = flat.float().contiguous()  # one gather: the statistics below read the sample, not the whole output
    mean = flat.mean()
    # two-pass (the mean taken out first): as exact as std_mean here, and several times faster on a CPU
    std = (flat - mean).square().sum().div(flat.numel() - 1).sqrt() if flat.numel() > 1 else flat.new_zeros(())
    zero = (flat == 0).float().mean()
    nan = flat.new_tensor(math.nan)
    if isinstance(module, (nn.Tanh, nn.Hardtanh)):
        saturated = (flat.abs() > 0.99).float().mean()
    elif isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        saturated = ((flat < 0.01) | (flat > 0.99)).float().mean()
    else:
        saturated = nan
    dead = nan
    if isinstance(module, RELU_LIKE) and y.dim() >= 2:
        unit_dim = 1 if y.dim() >= 3 else y.dim() - 1
        peak = y.amax(dim=[d for d in range(y.dim()) if d != unit_dim])
        dead = (peak <= 0).float().mean()
    lo, hi = torch.aminmax(flat) if flat.numel() else (nan, nan)
    finite = flat if math.isfinite(float(lo)) and math.isfinite(float(hi)) else flat[torch.isfinite(flat)]
    if finite.numel():
        if finite is not flat:
            lo, hi = torch.aminmax(finite)
        counts = torch.histc(finite, bins=HIST_BINS, min=float(lo), max=float(hi)) if hi > lo else \
            torch.cat([finite.new_tensor([float(finite.numel())]), finite.new_zeros(HIST_BINS - 1)])
    else:
        lo = hi = nan
        counts = flat.new_zeros(HIST_BINS)
    return torch.cat([torch.stack([mean, std, zero, saturated, dead, lo, hi]).double(), counts.double()])


def stats_record(step: int, taken: list[tuple[str, str, torch.Tensor]]) -> dict:
    """The ``activations`` record from the vectors ``_stats`` made."""
    if not taken:
        return {"kind": "activations", "step": step, "modules": []}
    values = torch.stack([v.cpu() for _, _, v in taken]).tolist()
    modules = []
    for (name, kind, _), v in zip(taken, values):
        mean, std, zero, saturated, dead, lo, hi = v[:7]
        modules.append({"name": name, "type": kind, "mean": number(mean), "std": number(std), "zero": zero,
                        "saturated": None if math.isnan(saturated) else saturated,
                        "dead": None if math.isnan(dead) else dead,
                        "hist": {"lo": number(lo) if not math.isnan(lo) else None,
                                 "hi": number(hi) if not math.isnan(hi) else None,
                                 "counts": [int(c) for c in v[7:]]}})
    return {"kind": "activations", "step": step, "modules": modules}


class ActivationSampler:
    """Forward hooks on the watched modules for one training forward pass (armed before a sampled step's
    forward, removed at that step's optimizer step): each module's first output is summarised."""

    def __init__(self):
        self.modules: list[tuple[str, nn.Module]] = []
        self.handles: list = []
        self.taken: list[tuple[str, str, torch.Tensor]] = []
        self.seen: set[int] = set()

    def arm(self, modules: list[tuple[str, nn.Module]]) -> None:
        self.disarm()
        self.modules, self.taken, self.seen = modules, [], set()
        for name, module in modules:
            self.handles.append(module.register_forward_hook(self._hook(name)))

    def _hook(self, name: str):
        def hook(module, _inputs, output):
            if id(module) in self.seen or not module.training or not torch.is_grad_enabled():
                return  # a later call (gradient accumulation) or an evaluation pass
            if isinstance(output, torch.Tensor) and output.is_floating_point() and output.numel():
                self.seen.add(id(module))
                self.taken.append((name, type(module).__name__, _stats(module, output)))
        return hook

    def disarm(self) -> list[tuple[str, str, torch.Tensor]]:
        """Remove the hooks; what they took."""
        for h in self.handles:
            h.remove()
        self.handles = []
        taken, self.taken = self.taken, []
        return taken


def first_conv(names: list[str], params: list[torch.Tensor]) -> int | None:
    """The index of the first 2-d convolution kernel that reads images (1 or 3 input channels)."""
    for i, p in enumerate(params):
        if p.dim() == 4 and p.shape[1] in (1, 3) and p.shape[2] <= 11 and p.shape[3] <= 11:
            return i
    return None


def filters_record(step: int, name: str, weight: torch.Tensor) -> dict:
    """The ``filters`` record: the first MAX_FILTERS filters, 4 significant digits."""
    w = weight.detach()[:MAX_FILTERS].float().cpu()
    values = [[[[float(f"{x:.4g}") for x in row] for row in channel] for channel in f] for f in w.tolist()]
    return {"kind": "filters", "step": step, "layer": name, "shape": list(weight.shape), "values": values}


def _finite(x) -> bool:
    if isinstance(x, torch.Tensor):
        return not x.is_floating_point() or bool(torch.isfinite(x).all())
    if isinstance(x, (list, tuple)):
        return all(_finite(v) for v in x)
    if isinstance(x, dict):
        return all(_finite(v) for v in x.values())
    return True


def find_nonfinite(roots: list[nn.Module], args: tuple, kwargs: dict) -> tuple[str | None, str | None, str]:
    """Replay the model's last forward pass (no grad; RNG state and buffers restored, so the script sees no
    difference) with hooks on every module: the first one, in call order, whose output is non-finite. Returns
    (module name, module type, a sentence)."""
    if not roots:
        return None, None, "no model was seen, so no module can be named"
    root = roots[0]
    if not _finite(args) or not _finite(kwargs):
        return None, None, "the model's input already holds NaN or inf values: check the data"
    bad_params = [n for n, p in root.named_parameters() if not bool(torch.isfinite(p.detach()).all())]
    if bad_params:
        return None, None, (f"the parameters are already non-finite ({', '.join(bad_params[:3])}): an earlier update "
                            "wrote NaN/inf into them")
    names = {id(m): n for n, m in root.named_modules()}
    found: list[tuple[str, str]] = []

    def hook(module, inputs, output):
        if not found and not _finite(output):
            found.append((names.get(id(module)) or type(module).__name__, type(module).__name__))

    buffers = [(b, b.detach().clone()) for b in root.buffers()]
    cpu_rng = torch.get_rng_state()
    cuda_rng = torch.cuda.get_rng_state_all() if torch.cuda.is_available() and torch.cuda.is_initialized() else None
    handles = [m.register_forward_hook(hook) for m in root.modules()]
    try:
        with torch.no_grad():
            output = root(*args, **kwargs)
    except Exception as exc:  # the replay is best effort: say why it found nothing
        return None, None, f"replaying the forward pass to find the module failed ({type(exc).__name__})"
    finally:
        for h in handles:
            h.remove()
        with torch.no_grad():
            for b, saved in buffers:
                b.copy_(saved)
        torch.set_rng_state(cpu_rng)
        if cuda_rng is not None:
            torch.cuda.set_rng_state_all(cuda_rng)
    if found:
        name, kind = found[0]
        return name, kind, (f"the output of module {name} ({kind}) is the first to become non-finite while its "
                            "inputs and parameters are finite")
    if _finite(output):
        return None, None, ("the model's outputs are finite: the non-finite value arises after the model, in the "
                            "loss computation")
    return None, None, "the model's output is non-finite, but no submodule's output is"
