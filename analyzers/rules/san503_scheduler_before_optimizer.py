from __future__ import annotations

from ..context import RuleContext
from ..flow import OPT_STEP, SCHED_STEP, inner_loop_has, is_conditional
from ..model import ProgramModel
from ..rule import SAFE, DeleteStatement, InsertAfter, Invalid, NodeFix, Rule, Valid
from ..syntax import block_of, statement_of_call, top_statement_in


class SchedulerBeforeOptimizer(Rule):
    """`scheduler.step()` called before `optimizer.step()` in an iteration of the loop that does both
    (the pre-1.1 order): the first value of the schedule is skipped. Quiet for conditional calls
    (`if epoch > 0: scheduler.step()`) and for `scheduler.step(metric)` / `step(epoch)`."""

    code = "SAN503"
    name = "scheduler-before-optimizer"
    message = "scheduler.step() is called before optimizer.step(): the first learning rate of the schedule is skipped"
    why = """
        Since PyTorch 1.1 `lr_scheduler.step()` must follow `optimizer.step()`. Called first, it advances
        the schedule before any update: the initial learning rate (or the first warm-up value) is never
        used and every later decay comes one step early. PyTorch warns once at run time; this finds it
        before the run.
    """
    example = """
        for epoch in range(epochs):
            scheduler.step()
            for x, y in loader:
                ...
                optimizer.step()
    """
    fix_doc = """
        Step the scheduler after the optimizer: at the end of the epoch for epoch schedules, right after
        `optimizer.step()` for per-iteration ones. The quick fix moves the call after the statement that
        steps the optimizer.
    """
    known_problems = """
        The order is read within one loop iteration; schedulers and optimizers stepped inside helpers the rule
        cannot read, or stepped conditionally, are left alone.
    """
    fix_safety = """
        Safe: moving the scheduler call right after the statement that steps the optimizer restores the order
        PyTorch documents and changes only the skipped first value of the schedule, which is the bug.
    """
    VALID = [
        Valid("""
            for epoch in range(10):
                for x, y in loader:
                    optimizer.step()
                scheduler.step()
        """),
        Valid("""
            for x, y in loader:
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
        """),
        Valid("""
            for epoch in range(10):
                if epoch > 0:
                    scheduler.step()
                for x, y in loader:
                    optimizer.step()
        """),
        Valid("""
            for epoch in range(10):
                scheduler.step(epoch)
                for x, y in loader:
                    optimizer.step()
        """),
        Valid("""
            for epoch in range(10):
                for x, y in loader:
                    scaler.step(optimizer)
                    scaler.update()
                plateau.step(val_loss)
        """),
    ]
    INVALID = [
        Invalid(
            """
            for epoch in range(10):
                scheduler.step()
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
                validate()
            """,
            line=2,
            fixed="""
            for epoch in range(10):
                for x, y in loader:
                    optimizer.zero_grad()
                    loss_fn(model(x), y).backward()
                    optimizer.step()
                scheduler.step()
                validate()
            """,
        ),
        Invalid(
            """
            for x, y in loader:
                lr_scheduler.step()
                loss_fn(model(x), y).backward()
                optimizer.step()
                optimizer.zero_grad()
            """,
            line=2,
            fixed="""
            for x, y in loader:
                loss_fn(model(x), y).backward()
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        for loop in program.loops:
            effects = flow.loop_effects(loop)
            kinds = {e.kind for e in effects}
            if OPT_STEP not in kinds or SCHED_STEP not in kinds:
                continue
            if inner_loop_has(loop, effects, OPT_STEP, SCHED_STEP):
                continue
            first_opt = next(i for i, e in enumerate(effects) if e.kind == OPT_STEP)
            for i, e in enumerate(effects[:first_opt]):
                if e.kind != SCHED_STEP or e.arg is not None or is_conditional(e, loop, steady=True):
                    continue
                if not flow.is_scheduler(e.target) and e.target is not None:
                    continue
                yield self.finding(e.site, fix=_fix(program, e, effects[first_opt]))
                break


def _fix(program: ProgramModel, sched, opt) -> NodeFix | None:
    if not sched.direct:
        return None
    stmt = statement_of_call(program, sched.site)
    if stmt is None:
        return None
    block = block_of(program, stmt)
    if block is None:
        return None
    anchor = top_statement_in(program, opt.site, block)
    if anchor is None or anchor is stmt:
        return None
    statements = list(block.body)
    if statements.index(anchor) < statements.index(stmt):
        return None
    return NodeFix("Step the scheduler after the optimizer",
                   (DeleteStatement(stmt), InsertAfter(anchor, program.code_for(sched.site))), SAFE)
