from __future__ import annotations

from ..context import RuleContext
from ..flow import BACKWARD, OPT_STEP, ZERO_GRAD
from ..lookups import is_model_name, same_object
from ..model import ProgramModel
from ..rule import SAFE, DeleteStatement, InsertBefore, Invalid, NodeFix, Rule, Valid
from ..syntax import block_of, statement_of_call


class ZeroGradAfterBackward(Rule):
    """Gradients cleared between `backward()` and the `step()` of the same optimizer (its own
    `zero_grad()`, or the model's when a single optimizer and a single model are involved): the step
    then sees zero (or None) gradients."""

    code = "SAN102"
    name = "zero-grad-after-backward"
    message = "zero_grad() between backward() and step() clears the gradients the step needs"
    why = """
        `zero_grad()` after `backward()` erases the gradients that were just computed, so the following
        `step()` updates nothing (or only applies weight decay / momentum). The loss stays flat and no
        error is raised.
    """
    example = """
        loss.backward()
        optimizer.zero_grad()
        optimizer.step()
    """
    fix_doc = """
        Clear the gradients before `backward()` (at the top of the iteration, or right after `step()`).
        The quick fix moves the `zero_grad()` call to just before `backward()`.
    """
    known_problems = """
        Only the optimizer's own `zero_grad()` (or the single model's) is matched; clearing through a helper
        that the rule cannot see, or through `p.grad = None` loops, is not recognised between `backward()` and
        `step()`.
    """
    fix_safety = """
        Safe: the `zero_grad()` call moves to just before `backward()` in the same block, so the step sees the
        gradients just computed and nothing else changes. Not offered when `backward()` and `zero_grad()` are in
        different blocks or several backward calls are involved.
    """
    VALID = [
        Valid("""
            for x, y in loader:
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
        """),
        Valid("""
            for x, y in loader:
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad()
        """),
        # GAN: clearing the generator between the discriminator's backward and step
        Valid("""
            for x in loader:
                netD.zero_grad()
                errD.backward()
                netG.zero_grad()
                optimizerD.step()
                errG.backward()
                optimizerG.step()
        """),
        # accumulation: step and clear every k batches
        Valid("""
            for i, (x, y) in enumerate(loader):
                (loss_fn(model(x), y) / k).backward()
                if (i + 1) % k == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # a second backward after the clearing (closure style)
        Valid("""
            loss.backward()
            opt.zero_grad()
            loss2.backward()
            opt.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            for x, y in loader:
                loss = loss_fn(model(x), y)
                loss.backward()
                optimizer.zero_grad()
                optimizer.step()
            """,
            line=4,
            fixed="""
            for x, y in loader:
                loss = loss_fn(model(x), y)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            """,
        ),
        Invalid(
            """
            def train_step(model, optimizer, x, y):
                loss = loss_fn(model(x), y)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                model.zero_grad()
                optimizer.step()
            """,
            line=5,
            fixed="""
            def train_step(model, optimizer, x, y):
                loss = loss_fn(model(x), y)
                model.zero_grad()
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                optimizer.step()
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        reported: set[int] = set()
        for scope in flow.all_scopes():
            effects = scope.effects
            steps = [e for e in effects if e.kind == OPT_STEP]
            if not steps:
                continue
            zero_targets = {e.target for e in effects if e.kind == ZERO_GRAD}
            step_targets = {e.target for e in steps}
            for si, step in enumerate(effects):
                if step.kind != OPT_STEP or step.arg is not None:
                    continue
                zero = backward = None
                zi = None
                for j in range(si - 1, -1, -1):
                    e = effects[j]
                    if e.kind == OPT_STEP and same_object(e.target, step.target):
                        break
                    if e.kind == BACKWARD:
                        if zero is None:
                            break  # a backward after the last clearing: fine
                        backward = e
                        break
                    if e.kind == ZERO_GRAD and zero is None and _matches(program, e.target, step.target, zero_targets, step_targets):
                        if _encloses(e, step):
                            zero, zi = e, j
                if zero is None or backward is None or id(zero.site) in reported:
                    continue
                if zero.via and backward.via and step.via and zero.via[0] is backward.via[0] is step.via[0]:
                    continue  # all inside one helper call: reported in the helper itself
                reported.add(id(zero.site))
                yield self.finding(zero.site, fix=_fix(program, effects, zero, zi))


def _matches(program, zero_target, step_target, zero_targets, step_targets) -> bool:
    if zero_target is None or step_target is None:
        return False
    if same_object(zero_target, step_target):
        return True
    return len(step_targets) == 1 and len(zero_targets) == 1 and is_model_name(program, zero_target)


def _encloses(zero, step) -> bool:
    """The clearing is not in a branch the step is outside of (its context is a prefix of the step's)."""
    return len(zero.ctx) <= len(step.ctx) and all(a is b for a, b in zip(zero.ctx, step.ctx))


def _fix(program: ProgramModel, effects, zero, zi) -> NodeFix | None:
    if not zero.direct:
        return None
    zero_stmt = statement_of_call(program, zero.site)
    if zero_stmt is None:
        return None
    # The backward(s) since the previous step / clearing: exactly one, direct, in the same block.
    backwards = []
    for j in range(zi - 1, -1, -1):
        e = effects[j]
        if e.kind in (OPT_STEP, ZERO_GRAD):
            break
        if e.kind == BACKWARD:
            backwards.append(e)
    if len(backwards) != 1 or not backwards[0].direct:
        return None
    back_stmt = statement_of_call(program, backwards[0].site)
    if back_stmt is None or block_of(program, back_stmt) is None or block_of(program, back_stmt) is not block_of(program, zero_stmt):
        return None
    code = program.code_for(zero.site)
    return NodeFix("Move zero_grad() before backward()",
                   (InsertBefore(back_stmt, code), DeleteStatement(zero_stmt)), SAFE)
