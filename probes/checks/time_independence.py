"""time-independence: in an autoregressive model, the output at position t must not depend on the inputs after t
(Karpathy's "use backprop to chart dependencies", along time): in eval mode, backprop from the output at a middle
position; the gradient at the token embeddings of every later position must be exactly zero. A non-zero gradient
there is a missing (or wrong) causal mask."""

from __future__ import annotations

import math

import torch

from ..context import CheckResult, ProbeContext
from ..replay import iter_tensors

ID = "time-independence"
SHIFTED = 0.9  # share of positions where the targets are the inputs one step ahead: next-token prediction


def _time_axis(tokens: torch.Tensor, batch_dim: int) -> int | None:
    """The time dimension of a 2-D token tensor: the one that is not the batch."""
    if tokens.dim() != 2 or batch_dim > 1:
        return None
    return 1 - batch_dim


def autoregressive(ctx: ProbeContext) -> tuple[torch.Tensor | None, str]:
    """The captured token sequences when the step is next-token prediction, else None; and why (or why not)."""
    step = ctx.step
    inputs = step.input_tensors()
    if not inputs:
        return None, "the model has no tensor input"
    tokens = inputs[0]
    if tokens.is_floating_point() or tokens.is_complex() or tokens.dtype == torch.bool:
        return None, "the model's input is not integer tokens: not a sequence model"
    axis = _time_axis(tokens, step.batch_dim)
    if axis is None:
        return None, f"the model's input {tuple(tokens.shape)} is not a (batch, time) sequence of tokens"
    if tokens.shape[axis] < 2:
        return None, "the sequences hold a single position"
    targets = [t for t in step.target_tensors() if not t.is_floating_point() and t.numel() == tokens.numel()]
    if not targets:
        return None, ("no integer target per position was found: the model may not predict the next token "
                      "(not judged as autoregressive)")
    target = targets[0].reshape(tokens.shape)
    shifted = target.narrow(axis, 0, tokens.shape[axis] - 1)
    scored = shifted >= 0  # negative targets are ignore_index padding (-1, -100): not predicted
    ahead = (shifted == tokens.narrow(axis, 1, tokens.shape[axis] - 1)) & scored
    if scored.any() and ahead.sum().item() >= SHIFTED * scored.sum().item():
        return tokens, "the targets are the inputs shifted by one position (next-token prediction)"
    if torch.equal(target, tokens):
        return tokens, "the targets are the inputs (the model shifts them to predict the next token)"
    return None, ("the targets are not the inputs one position ahead: not next-token prediction (a tagger or a "
                  "bidirectional model may look ahead on purpose)")


def time_independence(ctx: ProbeContext) -> CheckResult:
    site = ctx.sites.get("model")
    step = ctx.step
    tokens, why = autoregressive(ctx)
    if tokens is None:
        return CheckResult(ID, "skip", why, None, None, site)
    axis = _time_axis(tokens, step.batch_dim)
    wb = ctx.wb
    wb.reset()
    for m in wb.models:
        m.eval()
    shape = list(tokens.shape)
    shape[step.batch_dim] = step.sub_batch or step.batch_size
    embedded: list[tuple[torch.Tensor, int]] = []

    def embed_hook(module, args, out):
        x = args[0] if args else None
        if not embedded and isinstance(x, torch.Tensor) and not x.is_floating_point() and list(x.shape) == shape \
                and isinstance(out, torch.Tensor) and out.requires_grad:
            out.retain_grad()
            embedded.append((out, module.num_embeddings))

    handles = [mod.register_forward_hook(embed_hook) for m in wb.models for mod in m.modules()
               if isinstance(mod, torch.nn.Embedding)]
    try:
        result = step.run(wb, sub=True)
    finally:
        for h in handles:
            h.remove()
    if not embedded:
        wb.reset()
        return CheckResult(ID, "skip", "no nn.Embedding takes the tokens: there is no gradient to chart along time",
                           None, None, site)
    emb, vocab = embedded[0]
    out = _sequence_output(result.model_outputs, shape)
    if out is None:
        wb.reset()
        return CheckResult(ID, "skip", f"no model output has a value per position of the {tuple(shape)} tokens",
                           None, None, site)
    length = shape[axis]
    t = (length - 1) // 2
    gen = torch.Generator(device="cpu").manual_seed(0)
    at_t = out.select(axis, t)
    weights = torch.randn(at_t.shape, generator=gen).to(at_t.device, at_t.dtype)
    (at_t * weights).sum().backward()
    grad = emb.grad
    wb.reset()
    if grad is None:
        return CheckResult(ID, "skip", "the output does not reach the token embedding through autograd", None, None,
                           site)
    per_position = grad.detach().double().abs().movedim(axis, 0).reshape(length, -1).amax(1).cpu()
    own = float(per_position[t])
    later = per_position[t + 1:]
    series = {"grad_per_position": per_position.tolist(), "probed_position": t}
    measured = {"position": t, "positions": length, "max_grad_later": float(later.max()), "grad_own": own,
                "vocab": vocab}
    expected = f"gradient exactly 0 at positions {t + 1}..{length - 1}"
    leaking = [t + 1 + j for j, g in enumerate(later.tolist()) if g != 0]
    if leaking:
        first = leaking[0]
        return CheckResult(
            ID, "fail",
            f"in eval mode, the output at position {t} depends on the input at position {first}"
            f"{f' and {len(leaking) - 1} later one(s)' if len(leaking) > 1 else ''}: the model sees the future — "
            "a causal mask is missing or wrong (e.g. no masked_fill with torch.tril before the softmax, or "
            "is_causal=False)", measured, expected, site, series,
        )
    if own == 0 and not per_position[:t + 1].any():
        return CheckResult(ID, "warn", f"the output at position {t} does not depend on any input token (see "
                           "input-independence)", measured, expected, site, series)
    return CheckResult(ID, "pass", f"the output at position {t} depends only on positions 0..{t} of {length} "
                       f"({why}); the gradient at every later position is exactly 0", measured, expected, site,
                       series)


def _sequence_output(outputs: list, shape: list[int]) -> torch.Tensor | None:
    """The last floating model output with a value per token: (*shape, V), or flattened to (prod(shape), V)."""
    for out in [t for t in iter_tensors(outputs[::-1]) if t.is_floating_point() and t.requires_grad]:
        if out.dim() == 3 and list(out.shape[:2]) == shape:
            return out
        if out.dim() == 2 and out.shape[0] == math.prod(shape):
            return out.reshape(*shape, out.shape[1])
    return None


check = time_independence
