from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import innermost_loop
from ..lookups import int_value, is_batch_loop, range_stop
from ..model import ProgramModel
from ..rule import Invalid, Rule, Valid
from ..syntax import call_arg
from ._schedules import scheduler_steps, schedulers


def epochs_of(program: ProgramModel, flow, name: str) -> int | None:
    """The epoch count when scheduler ``name`` is stepped once per iteration of `for _ in range(N)`
    (and never inside a batch loop); None when that cannot be told."""
    loop_ids = {id(l) for l in program.loops}
    counts: set[int | None] = set()
    for e in scheduler_steps(flow, name):
        loop = innermost_loop(e)
        if loop is None:
            continue
        if id(loop) not in loop_ids or is_batch_loop(program, loop):
            return None
        is_range, stop = range_stop(program, loop)
        if not is_range:
            return None
        counts.add(stop)
    if len(counts) != 1:
        return None
    return counts.pop()


class DefaultDecaySchedule(Rule):
    """A per-epoch decay schedule whose horizon does not fit the run: `StepLR(step_size=s)` with
    `s >= epochs` (it never decays), `MultiStepLR` milestones beyond the last epoch (ImageNet's
    30/60/90 copied into a shorter run), `CosineAnnealingLR(T_max=t)` with `t != epochs`. Only literal
    values, and only when the scheduler is stepped once per iteration of `for epoch in range(N)` with a
    known N."""

    code = "SAN501"
    name = "default-decay-schedule"
    message = "the learning-rate schedule's horizon does not fit the number of epochs"
    why = """
        Decay schedules are tuned to a run length. The ImageNet recipe `StepLR(step_size=30, gamma=0.1)`
        over 90 epochs decays twice; copied into a 20-epoch run it never decays at all. A cosine
        schedule whose `T_max` is shorter than the run climbs back up, and a longer one never anneals.
    """
    example = """
        scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
        for epoch in range(20):
            train(...)
            scheduler.step()
    """
    fix_doc = """
        Derive the horizon from the epoch count: `StepLR(step_size=epochs // 3)`,
        `MultiStepLR(milestones=[int(epochs * 0.5), int(epochs * 0.75)])`, `CosineAnnealingLR(T_max=epochs)`.
        No automatic fix: the right schedule is a decision.
    """
    known_problems = """
        Only literal horizons and literal epoch counts are compared; schedules built from configuration
        values, or stepped by a framework, are not checked.
    """
    fix_safety = """
        No fix: the right schedule length is a decision the rule cannot make.
    """
    VALID = [
        # the ImageNet recipe itself
        Valid("""
            from torch.optim.lr_scheduler import StepLR
            sched = StepLR(opt, step_size=30, gamma=0.1)
            for epoch in range(90):
                train(epoch)
                sched.step()
        """),
        Valid("""
            from torch.optim.lr_scheduler import CosineAnnealingLR
            epochs = 50
            sched = CosineAnnealingLR(opt, T_max=epochs)
            for epoch in range(epochs):
                train(epoch)
                sched.step()
        """),
        Valid("""
            from torch.optim.lr_scheduler import MultiStepLR
            sched = MultiStepLR(opt, milestones=[30, 60, 80], gamma=0.1)
            for epoch in range(90):
                train(epoch)
                sched.step()
        """),
        # epoch count unknown
        Valid("""
            from torch.optim.lr_scheduler import StepLR
            sched = StepLR(opt, 30)
            for epoch in range(args.epochs):
                train(epoch)
                sched.step()
        """),
        # stepped per batch: T_max counts iterations
        Valid("""
            from torch.optim.lr_scheduler import CosineAnnealingLR
            sched = CosineAnnealingLR(opt, T_max=1000)
            for epoch in range(10):
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
            for epoch in range(20):
                train(epoch)
                sched.step()
            """,
            line=2,
        ),
        Invalid(
            """
            import argparse
            from torch import optim
            parser = argparse.ArgumentParser()
            parser.add_argument('--epochs', type=int, default=40)
            args = parser.parse_args()
            scheduler = optim.lr_scheduler.MultiStepLR(optimizer, milestones=[30, 60, 90])
            for epoch in range(args.epochs):
                train(epoch)
                scheduler.step()
            """,
            line=6,
        ),
        Invalid(
            """
            import torch
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, 200)
            for epoch in range(100):
                train(epoch)
                sched.step()
            """,
            line=2,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        for sched in schedulers(program):
            if sched.cls not in ("StepLR", "MultiStepLR", "CosineAnnealingLR"):
                continue
            epochs = epochs_of(program, flow, sched.name)
            if epochs is None or epochs <= 0:
                continue
            if sched.cls == "StepLR":
                arg = call_arg(sched.call, "step_size", 1)
                size = int_value(program, arg) if isinstance(arg, cst.Integer) else None
                if size is not None and size >= epochs:
                    yield self.finding(arg, message=f"StepLR(step_size={size}) never decays in a {epochs}-epoch run")
            elif sched.cls == "MultiStepLR":
                arg = call_arg(sched.call, "milestones", 1)
                if isinstance(arg, (cst.List, cst.Tuple)):
                    values = [int_value(program, el.value) if isinstance(el.value, cst.Integer) else None for el in arg.elements]
                    if values and None not in values and max(values) > epochs:
                        late = [v for v in values if v > epochs]
                        yield self.finding(arg, message=f"MultiStepLR milestones {late} lie beyond the last of {epochs} epochs")
            else:
                arg = call_arg(sched.call, "T_max", 1)
                t_max = int_value(program, arg) if isinstance(arg, cst.Integer) else None
                if t_max is not None and t_max != epochs:
                    yield self.finding(arg, message=f"CosineAnnealingLR(T_max={t_max}) does not match the {epochs}-epoch run")
