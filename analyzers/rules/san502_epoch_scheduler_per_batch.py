from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import innermost_loop
from ..lookups import int_value, is_batch_loop, range_stop
from ..model import ProgramModel
from ..name_guesses import counts_epochs
from ..rule import UNSAFE, DeleteStatement, InsertAfter, Invalid, NodeFix, Rule, Valid
from ..syntax import (
    LOOP_TYPES,
    block_of,
    call_arg,
    dotted_name,
    statement_of_call,
    walk,
)
from ..torch_api import EPOCH_SCHEDULERS
from ._schedules import scheduler_steps, schedulers

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
        Valid("""
            from torch.optim.lr_scheduler import StepLR
            sched = StepLR(opt, 30)
            for epoch in range(90):
                for x, y in train_loader:
                    opt.step()
                sched.step()
        """),
        Valid("""
            from torch.optim.lr_scheduler import OneCycleLR
            sched = OneCycleLR(opt, max_lr=0.1, total_steps=1000)
            for epoch in range(10):
                for x, y in train_loader:
                    opt.step()
                    sched.step()
        """),
        Valid("""
            from torch.optim.lr_scheduler import CosineAnnealingLR
            sched = CosineAnnealingLR(opt, T_max=epochs * len(train_loader))
            for epoch in range(epochs):
                for x, y in train_loader:
                    opt.step()
                    sched.step()
        """),
        Valid("""
            from torch.optim.lr_scheduler import LambdaLR
            sched = LambdaLR(opt, lambda s: min(1.0, s / 500))
            for epoch in range(3):
                for batch in train_loader:
                    opt.step()
                    sched.step()
        """),
        # an iteration-based run without epochs
        Valid("""
            from torch.optim.lr_scheduler import StepLR
            sched = StepLR(opt, 30)
            for x, y in train_loader:
                opt.step()
                sched.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            from torch.optim.lr_scheduler import StepLR
            sched = StepLR(opt, step_size=30, gamma=0.1)
            for epoch in range(90):
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                    sched.step()
                validate()
            """,
            line=8,
            fixed="""
            from torch.optim.lr_scheduler import StepLR
            sched = StepLR(opt, step_size=30, gamma=0.1)
            for epoch in range(90):
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                sched.step()
                validate()
            """,
        ),
        Invalid(
            """
            import torch

            def train_one_epoch(model, loader, optimizer, scheduler):
                for batch in loader:
                    optimizer.step()
                    scheduler.step()

            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=args.epochs)
            for epoch in range(args.epochs):
                train_one_epoch(model, train_loader, optimizer, scheduler)
            """,
            line=10,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        loop_ids = {id(l) for l in program.loops}
        reported: set[int] = set()
        for sched in schedulers(program):
            if sched.cls not in EPOCH_SCHEDULERS:
                continue
            # Direct effects first: a step reached both directly and through a helper call is reported
            # once, where it is written.
            for e in sorted(scheduler_steps(flow, sched.name), key=lambda e: bool(e.via)):
                loop = innermost_loop(e)
                if loop is None or id(loop) not in loop_ids or not is_batch_loop(program, loop):
                    continue
                outer = [c for c in e.ctx if isinstance(c, LOOP_TYPES) and c is not loop and _before(e.ctx, c, loop)]
                if not outer:
                    continue
                epochs = None
                for o in reversed(outer):
                    if id(o) in loop_ids:
                        is_range, stop = range_stop(program, o)
                        if is_range:
                            epochs = stop
                            break
                if not _epoch_scaled(program, sched, epochs):
                    continue
                if id(e.site) in reported or id(e.inner) in reported:
                    continue
                reported.update((id(e.site), id(e.inner)))
                yield self.finding(e.site, fix=_fix(program, e, loop))


def _before(ctx, a, b) -> bool:
    ia = next(i for i, c in enumerate(ctx) if c is a)
    ib = next(i for i, c in enumerate(ctx) if c is b)
    return ia < ib


def _epoch_scaled(program: ProgramModel, sched, epochs: int | None) -> bool:
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
        values = [int_value(program, el.value) for el in arg.elements]
        if values and None not in values:
            return max(values) <= limit
        return all(_epochish(el.value) for el in arg.elements) and bool(arg.elements)
    if isinstance(arg, cst.Integer):
        value = int_value(program, arg)
        return value is not None and value <= limit
    return _epochish(arg)


def _epochish(expr: cst.BaseExpression) -> bool:
    """`args.epochs`, `num_epochs`, `epochs // 3`: counted in epochs, with nothing per-iteration in it."""
    names = [dotted_name(n) or "" for n in walk(expr) if isinstance(n, (cst.Name, cst.Attribute))]
    text = " ".join(names)
    if any(isinstance(n, cst.Call) for n in walk(expr)):
        return False
    return counts_epochs(text)


def _fix(program: ProgramModel, e, loop) -> NodeFix | None:
    if not e.direct:
        return None
    stmt = statement_of_call(program, e.site)
    if stmt is None:
        return None
    body = getattr(loop, "body", None)
    if block_of(program, stmt) is not body or not isinstance(body, cst.IndentedBlock) or len(body.body) < 2:
        return None
    if getattr(loop, "orelse", None) is not None or block_of(program, loop) is None:
        return None
    return NodeFix("Step the scheduler once per epoch, after the batch loop",
                   (DeleteStatement(stmt), InsertAfter(loop, program.code_for(e.site))), UNSAFE)
