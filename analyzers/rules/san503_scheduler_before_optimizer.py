from __future__ import annotations

from ..flow import (
    LOOP_TYPES,
    OPT_STEP,
    SCHED_STEP,
    block_of,
    flow_of,
    is_conditional,
    statement_of_call,
    top_statement_in,
)
from ..model import ProgramModel
from ..rule import Invalid, NodeEdit, NodeFix, Rule, SAFE


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
        "for epoch in range(10):\n    for x, y in loader:\n        optimizer.step()\n    scheduler.step()\n",
        "for x, y in loader:\n    optimizer.step()\n    scheduler.step()\n    optimizer.zero_grad()\n",
        "for epoch in range(10):\n    if epoch > 0:\n        scheduler.step()\n    for x, y in loader:\n        optimizer.step()\n",
        "for epoch in range(10):\n    scheduler.step(epoch)\n    for x, y in loader:\n        optimizer.step()\n",
        "for epoch in range(10):\n    for x, y in loader:\n        scaler.step(optimizer)\n        scaler.update()\n    plateau.step(val_loss)\n",
    ]
    INVALID = [
        Invalid(
            "for epoch in range(10):\n    scheduler.step()\n    for x, y in loader:\n        optimizer.zero_grad()\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n    validate()\n",
            line=2,
            fixed="for epoch in range(10):\n    for x, y in loader:\n        optimizer.zero_grad()\n        loss_fn(model(x), y).backward()\n        optimizer.step()\n    scheduler.step()\n    validate()\n",
        ),
        Invalid(
            "for x, y in loader:\n    lr_scheduler.step()\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n    optimizer.zero_grad()\n",
            line=2,
            fixed="for x, y in loader:\n    loss_fn(model(x), y).backward()\n    optimizer.step()\n    lr_scheduler.step()\n    optimizer.zero_grad()\n",
        ),
    ]

    def check(self, model: ProgramModel):
        flow = flow_of(model)
        for loop in model.loops:
            effects = flow.loop_effects(loop)
            kinds = {e.kind for e in effects}
            if OPT_STEP not in kinds or SCHED_STEP not in kinds:
                continue
            if _inner_has_both(loop, effects):
                continue
            first_opt = next(i for i, e in enumerate(effects) if e.kind == OPT_STEP)
            for i, e in enumerate(effects[:first_opt]):
                if e.kind != SCHED_STEP or e.arg is not None or is_conditional(e, loop, steady=True):
                    continue
                if not flow.is_scheduler(e.target) and e.target is not None:
                    continue
                yield self.finding(e.site, fix=_fix(model, e, effects[first_opt]))
                break


def _inner_has_both(loop, effects) -> bool:
    kinds: dict[int, set[str]] = {}
    for e in effects:
        for c in e.ctx_after(loop):
            if isinstance(c, LOOP_TYPES):
                kinds.setdefault(id(c), set()).add(e.kind)
    return any(OPT_STEP in k and SCHED_STEP in k for k in kinds.values())


def _fix(model: ProgramModel, sched, opt) -> NodeFix | None:
    if not sched.direct:
        return None
    stmt = statement_of_call(model, sched.site)
    if stmt is None:
        return None
    block = block_of(model, stmt)
    if block is None:
        return None
    anchor = top_statement_in(model, opt.site, block)
    if anchor is None or anchor is stmt:
        return None
    statements = list(block.body)
    if statements.index(anchor) < statements.index(stmt):
        return None
    return NodeFix("Step the scheduler after the optimizer",
                   (NodeEdit("delete_statement", stmt), NodeEdit("insert_after", anchor, model.code_for(sched.site))), SAFE)
