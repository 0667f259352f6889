from __future__ import annotations

import re

import libcst as cst

from ..flow import (
    LOOP_TYPES,
    block_of,
    call_arg,
    flow_of,
    innermost_loop,
    int_value,
    is_batch_loop,
    range_stop,
    scheduler_steps,
    schedulers,
    statement_of_call,
)
from ..model import ProgramModel, dotted_name, walk
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE

_EPOCH_SCHEDULERS = frozenset({"StepLR", "MultiStepLR", "ExponentialLR", "CosineAnnealingLR", "PolynomialLR"})
_DEFAULT_EPOCH_LIMIT = 300  # horizons this small are epochs, not iterations


class EpochSchedulerPerBatch(Rule):
    """An epoch-based scheduler (`StepLR`, `MultiStepLR`, `ExponentialLR`, `CosineAnnealingLR`,
    `PolynomialLR`) whose horizon is counted in epochs (a small literal, at most the epoch count, or a
    name such as `args.epochs`) stepped inside the batch loop of an epoch loop. Step-based schedules
    (`OneCycleLR`, `LambdaLR` warm-up, `get_linear_schedule_with_warmup`, horizons like
    `len(loader) * epochs`) are stepped per batch on purpose and stay quiet."""

    code = "SAN502"
    name = "epoch-scheduler-per-batch"
    message = "an epoch-based scheduler is stepped every batch: its schedule runs len(loader) times too fast"
    why = """
        `StepLR(step_size=30)` means "every 30 calls to step()". Stepped per batch, the learning rate is
        divided by 10 every 30 *batches*: after a fraction of the first epoch it is effectively zero and
        training stalls. Cosine and exponential schedules collapse the same way.
    """
    example = """
        scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
        for epoch in range(90):
            for x, y in train_loader:
                ...
                optimizer.step()
                scheduler.step()
    """
    fix_doc = """
        Step epoch-based schedulers once per epoch, after the batch loop — or, to schedule per
        iteration, express the horizon in iterations (`T_max=epochs * len(loader)`). The quick fix moves
        the `scheduler.step()` call after the batch loop.
    """
    known_problems = """
        Epoch-based schedules are recognised by class name and by a horizon that looks like an epoch count;
        a custom scheduler class, or a horizon computed in another function, is not classified.
    """
    fix_safety = """
        Unsafe: moving `scheduler.step()` after the batch loop changes the learning rate of every step of the
        run; the author may have tuned the run with the fast schedule.
    """
    VALID = [
        "from torch.optim.lr_scheduler import StepLR\nsched = StepLR(opt, 30)\nfor epoch in range(90):\n    for x, y in train_loader:\n        opt.step()\n    sched.step()\n",
        "from torch.optim.lr_scheduler import OneCycleLR\nsched = OneCycleLR(opt, max_lr=0.1, total_steps=1000)\nfor epoch in range(10):\n    for x, y in train_loader:\n        opt.step()\n        sched.step()\n",
        "from torch.optim.lr_scheduler import CosineAnnealingLR\nsched = CosineAnnealingLR(opt, T_max=epochs * len(train_loader))\nfor epoch in range(epochs):\n    for x, y in train_loader:\n        opt.step()\n        sched.step()\n",
        "from torch.optim.lr_scheduler import LambdaLR\nsched = LambdaLR(opt, lambda s: min(1.0, s / 500))\nfor epoch in range(3):\n    for batch in train_loader:\n        opt.step()\n        sched.step()\n",
        # an iteration-based run without epochs
        "from torch.optim.lr_scheduler import StepLR\nsched = StepLR(opt, 30)\nfor x, y in train_loader:\n    opt.step()\n    sched.step()\n",
    ]
    INVALID = [
        Invalid(
            "from torch.optim.lr_scheduler import StepLR\nsched = StepLR(opt, step_size=30, gamma=0.1)\nfor epoch in range(90):\n"
            "    for x, y in train_loader:\n        opt.zero_grad()\n        loss_fn(model(x), y).backward()\n        opt.step()\n        sched.step()\n    validate()\n",
            line=8,
            fixed="from torch.optim.lr_scheduler import StepLR\nsched = StepLR(opt, step_size=30, gamma=0.1)\nfor epoch in range(90):\n"
            "    for x, y in train_loader:\n        opt.zero_grad()\n        loss_fn(model(x), y).backward()\n        opt.step()\n    sched.step()\n    validate()\n",
        ),
        Invalid(
            "import torch\n\ndef train_one_epoch(model, loader, optimizer, scheduler):\n    for batch in loader:\n        optimizer.step()\n        scheduler.step()\n\n"
            "scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)\nfor epoch in range(args.epochs):\n"
            "    train_one_epoch(model, train_loader, optimizer, scheduler)\n",
            line=10,
        ),
    ]

    def check(self, model: ProgramModel):
        flow = flow_of(model)
        loop_ids = {id(l) for l in model.loops}
        reported: set[int] = set()
        for sched in schedulers(model):
            if sched.cls not in _EPOCH_SCHEDULERS:
                continue
            # Direct effects first: a step reached both directly and through a helper call is reported
            # once, where it is written.
            for e in sorted(scheduler_steps(flow, sched.name), key=lambda e: bool(e.via)):
                loop = innermost_loop(e)
                if loop is None or id(loop) not in loop_ids or not is_batch_loop(model, loop):
                    continue
                outer = [c for c in e.ctx if isinstance(c, LOOP_TYPES) and c is not loop and _before(e.ctx, c, loop)]
                if not outer:
                    continue
                epochs = None
                for o in reversed(outer):
                    if id(o) in loop_ids:
                        is_range, stop = range_stop(model, o)
                        if is_range:
                            epochs = stop
                            break
                if not _epoch_scaled(model, sched, epochs):
                    continue
                if id(e.site) in reported or id(e.inner) in reported:
                    continue
                reported.update((id(e.site), id(e.inner)))
                yield self.finding(e.site, fix=_fix(model, e, loop))


def _before(ctx, a, b) -> bool:
    ia = next(i for i, c in enumerate(ctx) if c is a)
    ib = next(i for i, c in enumerate(ctx) if c is b)
    return ia < ib


def _epoch_scaled(model: ProgramModel, sched, epochs: int | None) -> bool:
    limit = epochs if epochs is not None else _DEFAULT_EPOCH_LIMIT
    call = sched.call
    if sched.cls == "ExponentialLR":
        gamma = call_arg(call, "gamma", 1)
        if isinstance(gamma, cst.Float):
            try:
                return float(gamma.value) <= 0.99
            except ValueError:
                return False
        return False
    keyword, pos = {"StepLR": ("step_size", 1), "MultiStepLR": ("milestones", 1),
                    "CosineAnnealingLR": ("T_max", 1), "PolynomialLR": ("total_iters", 1)}[sched.cls]
    arg = call_arg(call, keyword, pos)
    if arg is None:
        return False
    if isinstance(arg, (cst.List, cst.Tuple)):
        values = [int_value(model, el.value) for el in arg.elements]
        if values and None not in values:
            return max(values) <= limit
        return all(_epochish(el.value) for el in arg.elements) and bool(arg.elements)
    if isinstance(arg, cst.Integer):
        value = int_value(model, arg)
        return value is not None and value <= limit
    return _epochish(arg)


def _epochish(expr: cst.BaseExpression) -> bool:
    """`args.epochs`, `num_epochs`, `epochs // 3`: counted in epochs, with nothing per-iteration in it."""
    names = [dotted_name(n) or "" for n in walk(expr) if isinstance(n, (cst.Name, cst.Attribute))]
    text = " ".join(names)
    if any(isinstance(n, cst.Call) for n in walk(expr)):
        return False
    return bool(re.search(r"epoch", text, re.I)) and not re.search(r"step|iter|batch|len|total", text, re.I)


def _fix(model: ProgramModel, e, loop) -> NodeFix | None:
    if not e.direct:
        return None
    stmt = statement_of_call(model, e.site)
    if stmt is None:
        return None
    body = getattr(loop, "body", None)
    if block_of(model, stmt) is not body or not isinstance(body, cst.IndentedBlock) or len(body.body) < 2:
        return None
    if getattr(loop, "orelse", None) is not None or block_of(model, loop) is None:
        return None
    return NodeFix("Step the scheduler once per epoch, after the batch loop",
                   (NodeEdit("delete_statement", stmt), NodeEdit("insert_after", loop, model.code_for(e.site))), UNSAFE)
