from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import BACKWARD, OPT_STEP, ZERO_GRAD, inner_loop_has
from ..lookups import kind_of_name
from ..model import ProgramModel
from ..rule import SAFE, InsertBefore, Invalid, NodeFix, Rule, Valid
from ..syntax import dotted_names_in, loop_body_block, loop_header
from ..torch_api import OPTIMIZER
from ..values import values


class MissingZeroGrad(Rule):
    """A loop that calls `backward()` and `optimizer.step()` but never clears the gradients: no
    `zero_grad()` (of the optimizer or the model, with or without `set_to_none`), no `p.grad = None`,
    no `p.grad.zero_()` — in the loop itself or in a helper it calls (same module or a sibling module)."""

    code = "SAN101"
    name = "missing-zero-grad"
    message = "this loop calls backward() and step() but never clears the gradients (zero_grad)"
    why = """
        `backward()` *adds* to `.grad`. Without clearing, every step uses the sum of the gradients of all
        batches seen so far: the effective learning rate grows with the iteration count and the update
        direction is dominated by old batches. Training may still seem to progress, which makes the bug
        easy to miss. (Gradient accumulation clears too — only every k batches.)
    """
    example = """
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
    """
    fix_doc = """
        Call `optimizer.zero_grad()` (or `optimizer.zero_grad(set_to_none=True)`) once per step, at the
        top of the loop body or right after `step()`. The quick fix inserts `optimizer.zero_grad()` at the
        top of the loop body.
    """
    known_problems = """
        The rule follows calls into helpers of the same module and of sibling modules, but not into code it
        cannot read (a library's training step, a `zero_grad` hidden behind `getattr`), and it assumes such
        calls do not clear gradients: it stays quiet only when it sees a clearing call. Deliberate accumulation
        over the whole run (rare) is reported too. With several optimizers (a GAN), one stepped but never cleared
        is reported only when the modules each optimizer holds are known (their `.parameters()`, also through a
        builder helper that returns them) and the cleared ones hold none of its modules; two instances of one
        module class count as the same module.
    """
    fix_safety = """
        Safe: inserting `optimizer.zero_grad()` at the top of the loop body changes only what the finding
        names, the gradients that leaked from earlier iterations. Not offered when the loop body shares its
        line with the loop header.
    """
    VALID = [
        # zero_grad at the start of the loop
        Valid("""
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
        """),
        # after the forward pass
        Valid("""
            for x, y in loader:
                out = model(x)
                optimizer.zero_grad()
                criterion(out, y).backward()
                optimizer.step()
        """),
        # after step, with set_to_none, and before the loop
        Valid("""
            optimizer.zero_grad()
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        """),
        # the model's zero_grad
        Valid("""
            for x, y in loader:
                model.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
        """),
        # p.grad = None
        Valid("""
            for x, y in loader:
                for p in model.parameters():
                    p.grad = None
                loss_fn(model(x), y).backward()
                optimizer.step()
        """),
        # a helper of the same module
        Valid("""
            def reset(opt):
                opt.zero_grad()

            for x, y in loader:
                reset(optimizer)
                loss_fn(model(x), y).backward()
                optimizer.step()
        """),
        # LBFGS closure
        Valid("""
            def closure():
                optimizer.zero_grad()
                loss = loss_fn(model(x), y)
                loss.backward()
                return loss

            for i in range(20):
                optimizer.step(closure)
        """),
        # accumulating over the whole epoch, one step after the loop
        Valid("""
            optimizer.zero_grad()
            for x, y in loader:
                loss_fn(model(x), y).backward()
            optimizer.step()
        """),
        # env.step() is not an optimizer
        Valid("""
            for t in range(100):
                obs, r, done, info = env.step(a)
                loss.backward()
        """),
    ]
    INVALID = [
        Invalid(
            """
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """,
            line=1,
            column=4,
            fixed="""
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            """,
        ),
        Invalid(
            """
            def train(model, opt, loader):
                for epoch in range(10):
                    for x, y in loader:
                        scaler.scale(loss_fn(model(x), y)).backward()
                        scaler.step(opt)
                        scaler.update()
            """,
            line=3,
            fixed="""
            def train(model, opt, loader):
                for epoch in range(10):
                    for x, y in loader:
                        opt.zero_grad()
                        scaler.scale(loss_fn(model(x), y)).backward()
                        scaler.step(opt)
                        scaler.update()
            """,
        ),
        # zero_grad once per epoch does not clear between the batches
        Invalid(
            """
            for epoch in range(3):
                opt.zero_grad()
                for x, y in loader:
                    loss_fn(model(x), y).backward()
                    opt.step()
            """,
            line=3,
            fixed="""
            for epoch in range(3):
                opt.zero_grad()
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
            """,
        ),
        # the step in a helper of the same module
        Invalid(
            """
            def update(optimizer):
                optimizer.step()

            for x, y in loader:
                loss_fn(model(x), y).backward()
                update(opt)
            """,
            line=4,
            fixed="""
            def update(optimizer):
                optimizer.step()

            for x, y in loader:
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                update(opt)
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        for loop in program.loops:
            effects = flow.loop_effects(loop)
            steps = [e for e in effects if e.kind == OPT_STEP]
            backwards = [e for e in effects if e.kind == BACKWARD]
            if not steps or not backwards:
                continue
            if any(s.arg is not None for s in steps):
                continue  # step(closure): the closure owns the gradients
            if inner_loop_has(loop, effects, BACKWARD, OPT_STEP):
                continue  # reported on the inner loop
            start, end = loop_header(loop)
            if any(e.kind == ZERO_GRAD for e in effects):
                uncleared = _uncleared_optimizer(program, effects, steps)
                if uncleared is not None:
                    yield self.finding(start, end_node=end, message=f"this loop steps {uncleared} but never clears "
                                       f"its gradients ({uncleared}.zero_grad()): they pile up across iterations")
                continue
            yield self.finding(start, end_node=end, fix=_fix(program, loop, steps))


def _uncleared_optimizer(program: ProgramModel, effects, steps) -> str | None:
    """With several optimizers (a GAN's generator and discriminator): one that is stepped but never cleared,
    while every clearing in the loop names another optimizer over other modules' parameters. The bindings' text
    says which modules each optimizer holds; when it cannot tell, the optimizers' abstract values may (also when
    a helper built them)."""
    clearings = [e for e in effects if e.kind == ZERO_GRAD]
    cleared = {e.target for e in clearings}
    if all(s.target is not None and s.target in cleared for s in steps):
        return None  # every optimizer stepped is cleared by name
    by_names = _uncleared_by_names(program, clearings, steps)
    if by_names is not False:
        return by_names
    by_values = _uncleared_by_values(program, clearings, steps)
    return None if by_values is False else by_values


def _uncleared_by_names(program: ProgramModel, clearings, steps) -> str | None | bool:
    """The answer from the optimizers' bindings (``opt_d = Adam(netD.parameters())``); False when they do not
    say enough."""
    cleared = {e.target for e in clearings}
    if None in cleared:
        return None  # p.grad = None and the like: may clear anything
    kinds = [kind_of_name(program, t) for t in cleared]
    if any(kind is not None and kind != OPTIMIZER for kind in kinds):
        return None  # model.zero_grad(): may clear anything
    cleared_modules = [_parameter_owners(program, t) for t in cleared]
    if None in kinds or any(owners is None for owners in cleared_modules):
        return False
    undecided = False
    for target in dict.fromkeys(s.target for s in steps):
        if target in cleared:
            continue
        owners = _parameter_owners(program, target) if kind_of_name(program, target) == OPTIMIZER else None
        if not owners:
            undecided = True
        elif not any(_overlap(owners, other) for other in cleared_modules):
            return target
    return False if undecided else None


def _uncleared_by_values(program: ProgramModel, clearings, steps) -> str | None | bool:
    """The answer of :func:`_uncleared_optimizer` from the optimizers' values, when every clearing and step is
    written in the loop on an optimizer whose modules are known; False when one is not."""
    found = values(program)
    modules: dict[str, set[int]] = {}
    for e in [*clearings, *steps]:
        call = e.inner
        if not e.direct or e.target is None or not isinstance(call, cst.Call) or not isinstance(call.func, cst.Attribute):
            return False
        value = found.of(call.func.value)
        if value is None or value.kind != OPTIMIZER or not value.params \
                or any(m is None or m.module is None for m in value.params):
            return False
        keys = {id(m.module.classdef) if m.module.classdef is not None else id(m.module.call) for m in value.params}
        if modules.setdefault(e.target, keys) != keys:
            return False  # one name, two optimizers
    cleared = {e.target for e in clearings}
    for e in steps:
        if e.target not in cleared and not any(modules[e.target] & modules[c] for c in cleared):
            return e.target
    return None


def _overlap(owners: set[str], others: set[str]) -> bool:
    """``model`` and ``model.encoder`` share parameters."""
    return any(a == b or a.startswith(b + ".") or b.startswith(a + ".") for a in owners for b in others)


def _parameter_owners(program: ProgramModel, optimizer: str) -> set[str] | None:
    """The modules whose ``.parameters()`` the optimizer bound to ``optimizer`` is built over (``{"netG"}``);
    None when the module's code does not say it plainly."""
    bindings = program.bindings.get(optimizer, [])
    if len(bindings) != 1 or not isinstance(bindings[0].value, cst.Call):
        return None
    call = bindings[0].value
    params = [a for a in call.args if a.keyword is None or a.keyword.value == "params"][:1]
    owners = set()
    for arg in params:
        for name in dotted_names_in(arg.value):
            if name.endswith((".parameters", ".named_parameters")):
                owners.add(name.rsplit(".", 1)[0])
    return owners or None


def _fix(program: ProgramModel, loop: cst.CSTNode, steps) -> NodeFix | None:
    targets = {s.target for s in steps}
    if len(targets) != 1:
        return None
    target = targets.pop()
    if not target or target.split(".")[0] == "self" and not any(s.direct for s in steps):
        return None
    body = loop_body_block(loop)
    if body is None:
        return None
    return NodeFix(f"Insert {target}.zero_grad() at the top of the loop",
                   (InsertBefore(body.body[0], f"{target}.zero_grad()"),), SAFE)
