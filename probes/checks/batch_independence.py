"""batch-independence: in eval mode, the output of one sample must not depend on the other samples' inputs
(Karpathy's "use backprop to chart dependencies"), along the batch dimension the step found — unless the model
mixes samples on purpose (graphs, batch-statistics BatchNorm, similarity outputs, ``--allow-mixing``)."""

from __future__ import annotations

import math

import torch

from ..context import CheckResult, ProbeContext
from ..replay import batch_axis_of, iter_tensors

ID = "batch-independence"


def intended_mixing(ctx: ProbeContext) -> str | None:
    """Why the model mixes samples on purpose, when it visibly does: ``--allow-mixing``, a graph's adjacency or
    ``edge_index`` among the inputs (message passing), BatchNorm that normalises with the batch's own statistics
    even in eval mode."""
    if ctx.allow_mixing:
        return "--allow-mixing: the model mixes samples on purpose"
    step = ctx.step
    n = step.batch_size
    for t in step.input_tensors()[1:]:
        if t.layout != torch.strided and t.dim() == 2:
            return f"a sparse {tuple(t.shape)} adjacency is an input: message passing mixes nodes on purpose"
        if t.dim() == 2 and t.shape[0] == t.shape[1] == n:
            return (f"a {n} × {n} matrix over the samples (a graph's adjacency) is an input: message passing mixes "
                    "nodes on purpose")
        if t.dim() == 2 and t.shape[0] == 2 and not t.is_floating_point() and t.numel() and int(t.max()) < n:
            return (f"an edge_index ({tuple(t.shape)}, node ids below {n}) is an input: message passing mixes nodes "
                    "on purpose")
    for m in ctx.wb.models:
        for name, mod in m.named_modules():
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and not mod.track_running_stats:
                return (f"{name or 'the model'} ({type(mod).__name__}, track_running_stats=False) normalises with "
                        "the batch's own statistics even in eval mode: samples mix on purpose")
    return None


def batch_independence(ctx: ProbeContext) -> CheckResult:
    cid = "batch-independence"
    site = ctx.sites.get("model")
    reason = intended_mixing(ctx)
    if reason:
        return CheckResult(cid, "skip", reason, None, None, site)
    wb = ctx.wb
    wb.reset()
    for m in wb.models:
        m.eval()
    embeds: list[torch.Tensor] = []
    handles = []

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
    step = ctx.step
    n = step.sub_batch or step.batch_size
    bd = step.batch_dim
    if n < 2:
        wb.reset()
        return CheckResult(cid, "skip", "the batch holds a single sample", None, None, site)
    found = _batch_output(result.model_outputs, n, bd, getattr(step, "first_shape", None))
    if found is None:
        wb.reset()
        outs = list(iter_tensors(result.model_outputs))
        if outs and all(t.dim() == 0 for t in outs):
            return CheckResult(cid, "skip", f"the model returns a scalar (it computes the loss itself, over all {n} "
                               "samples): there is no per-sample output to chart — the batch-level loss compares "
                               "samples by design (contrastive or cross-correlation objectives)", None, None, site)
        return CheckResult(cid, "skip", f"no model output has the batch ({n} samples) along a dimension of its own",
                           None, None, site)
    out, out_axis = found
    axes = list(result.input_axes) + [0] * (len(result.model_inputs) - len(result.input_axes))
    probes = [(t, a) for t, a in zip(result.model_inputs, axes) if a is not None and t.dim() > a and t.shape[a] == n]
    probes += [(e, a) for e in embeds for a in [batch_axis_of(e, n, bd)] if a is not None][:1]
    samples = result.sample_inputs if len(result.sample_inputs) == n else []  # a list batch: one tensor a sample
    if not probes and not samples:
        wb.reset()
        return CheckResult(cid, "skip", "the inputs are integer tokens and no nn.Embedding takes them (a table "
                           "indexed directly, as in a bigram model, say): there is no input gradient to chart per "
                           "sample", None, None, site)
    i = n // 2
    gen = torch.Generator(device="cpu").manual_seed(0)
    own_out = out.select(out_axis, i)
    w = torch.randn(own_out.shape, generator=gen).to(out.device, out.dtype)
    (own_out * w).sum().backward()
    per_sample = torch.zeros(n, dtype=torch.float64)
    for t, a in probes:
        g = t.grad
        if g is not None:
            per_sample += g.detach().double().abs().movedim(a, 0).reshape(n, -1).amax(1).cpu()
    for j, t in enumerate(samples):
        if t.grad is not None:
            per_sample[j] += float(t.grad.detach().double().abs().max())
    wb.reset()
    own = float(per_sample[i])
    others = torch.cat([per_sample[:i], per_sample[i + 1:]])
    leak = float(others.max())
    series = {"grad_per_sample": per_sample.tolist(), "probed_sample": i}
    measured = {"max_grad_other_samples": leak, "grad_own_sample": own}
    if leak > 1e-6 * max(own, 1e-30) and leak > 0:
        if out.dim() == 2 and out.shape[0] == out.shape[1] == n and _over_the_samples(step, wb, n):
            return CheckResult(cid, "skip", f"the model's output is a {n} × {n} matrix over the samples "
                               "(similarities, as in contrastive models): it compares samples on purpose", None, None,
                               site)
        leaking = [j for j in range(n) if j != i and per_sample[j] > 1e-6 * max(own, 1e-30)]
        return CheckResult(
            cid, "fail",
            f"in eval mode, the output of sample {i} depends on {len(leaking)} other sample(s) of the batch: "
            "something mixes samples across the batch dimension (e.g. x.view(features, batch).t() instead of "
            "x.view(batch, features), or a reduction over dim 0)", measured, 0.0, site, series,
        )
    if own == 0:
        return CheckResult(cid, "warn", f"the gradient of sample {i}'s output with respect to its own input is "
                           "exactly zero: the output does not depend on the input, or the graph from the input is cut "
                           "(.detach(), a copy into a new tensor such as torch.nested.nested_tensor) — see "
                           "input-independence and gradient-flow", measured, 0.0, site, series)
    along = f", batch along dimension {bd} from {step.batch_dim_source}" if bd else \
        f", {step.batch_dim_source}" if samples else ""
    return CheckResult(cid, "pass", f"sample {i}'s output depends only on its own input ({n} samples probed{along})",
                       measured, 0.0, site, series)


def _over_the_samples(step, wb, n: int) -> bool:
    """Whether an ``n`` × ``n`` output of the sub-batch is a matrix over its samples (similarities) rather than
    ``n`` scores a sample (a classifier with as many classes as the sub-batch has samples): on the whole batch the
    scores keep their ``n`` columns. True when there is no other batch size to compare with (cannot tell)."""
    if step.batch_size == n:
        return True
    for m in wb.models:
        m.eval()
    with torch.no_grad():
        outputs = step.run(wb).model_outputs
    wb.reset()
    whole = step.batch_size
    return not any(t.dim() == 2 and t.shape[0] == whole and t.shape[1] == n and t.is_floating_point()
                   for t in iter_tensors(outputs))


def _batch_output(outputs: list, n: int, bd: int, first_shape: list[int] | None):
    """The model output to probe and its batch dimension: the last floating output with the batch along the inputs'
    batch dimension (or 0), or one flattened over the leading (sequence, batch) dimensions of the input."""
    tensors = [t for t in iter_tensors(outputs[::-1]) if t.is_floating_point() and t.requires_grad and t.dim() > 0]
    square = [t for t in tensors if t.dim() == 2 and t.shape[0] == t.shape[1] == n]
    for t in [t for t in tensors if all(t is not q for q in square)] + square:  # per-sample outputs first
        axis = batch_axis_of(t, n, bd)
        if axis is None and t.dim() > bd and t.shape[0] == n:
            axis = 0
        if axis is not None:
            return t, axis
        if first_shape and bd > 0 and len(first_shape) > bd:
            lead = list(first_shape[:bd + 1])
            lead[bd] = n
            if t.shape[0] == math.prod(lead):  # e.g. an RNN LM's decoded.view(-1, ntokens)
                return t.reshape(*lead, *t.shape[1:]), bd
    return None


check = batch_independence
