from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import BACKWARD, ZERO_GRAD
from ..lookups import int_value
from ..model import ProgramModel
from ..name_guesses import looks_like_accelerator
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name, enclosing_loop, walk
from ._accumulation import accumulation_gates, counter_gates
from ._accumulation_divisor import Division, another_count, evidently_raw_loss, has_scaling, single_division


class AccumulationUnscaledLoss(Rule):
    """Gradient accumulation (the optimizer steps under `if ... % k ...:` while `backward()` runs every
    batch and nothing else clears the gradients) whose loss is not divided by the number of
    accumulation steps, or is divided once by another count than the gate's: `loss / args.grad_accum`
    while the optimizer steps on `% args.accum_steps`, `/ 8` while it steps on `% 4`."""

    code = "SAN105"
    name = "accumulation-unscaled-loss"
    message = "gradients are accumulated over k batches but the loss is not divided by k"
    why = """
        Accumulated gradients are summed, not averaged: k micro-batches of loss L give k times the
        gradient of one batch of the combined size. The effective learning rate is k times larger than
        the one tuned for the big batch, and it changes whenever k does. A loss divided by another count
        than the k the optimizer steps on scales the gradients by that count over k instead: the two
        settings drift apart as soon as one of them is changed.
    """
    example = """
        for i, (x, y) in enumerate(loader):
            loss = criterion(model(x), y)
            loss.backward()
            if (i + 1) % accum_steps == 0:
                optimizer.step()
                optimizer.zero_grad()
    """
    fix_doc = """
        Divide the loss by the number of accumulation steps before `backward()`:
        `(loss / accum_steps).backward()`, with the same count the optimizer steps on. (accelerate's
        `accelerator.backward` does this for you when the Accelerator is built with
        `gradient_accumulation_steps`.)
    """
    known_problems = """
        The accumulation factor must be visible at the `% k` test (or at an `if count >= k:` gate that resets
        its counter to 0); a loss already scaled inside a helper, by a
        `GradScaler` wrapper or by a loss function's own reduction is not seen, and a deliberately summed loss
        (rare) is reported too.

        A wrong divisor is reported only when the loss (a criterion call, a functional loss, a model output's
        `.loss`, or a sum of those) is scaled exactly once on its way to `backward()` — one division, in the
        loop's own body, by a name, an attribute or an integer — and that divisor is evidently another
        count: an integer literal other than the constant value of `k` (`% 4` and `/ 8`, `k = 4` and `/ 2`;
        not when `k` is an `args.x` whose default may be overridden, nor for `(a + b) / 2`, an average of
        losses), or a name that says "accumulation" (`accum`, `grad_acc`; not when it also says loss, tokens,
        samples, size, length or total) other than `k`'s own such name, both attributes of the same object
        (`args.grad_accum` and `args.accum_steps`) or both names bound outside the loop and no parameters,
        with no assignment relating them (`grad_accum = accum_steps`, `args.accum = args.grad_accum`) and no equal
        known values. Dividing by a batch size, a token count or `len(loader)` is a normalisation, not an
        accumulation count, and is never reported; nor is a loss divided twice (by the batch size and by `k`),
        nor names on different objects (`cfg.accum` and `args.grad_accum`), which may hold the same number.
    """
    fix_safety = """
        Unsafe: dividing the loss by k divides the gradients by k, so the effective learning rate of a run that
        was tuned with the unscaled loss changes. Apply it with `--unsafe-fixes` and re-tune if needed. The
        same holds for a wrong divisor, which the fix replaces by the gate's k (only when k is a literal or a
        name the loop does not rebind): the gradients change scale, and if it was the gate that used the
        wrong count, the fix to make is there instead.
    """
    VALID = [
        Valid("""
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / accum
                loss.backward()
                if (i + 1) % accum == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        Valid("""
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                loss = loss / accum
                loss.backward()
                if (i + 1) % accum == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        Valid("""
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                loss /= accum
                scaler.scale(loss).backward()
                if (i + 1) % accum == 0:
                    scaler.step(opt)
                    scaler.update()
                    opt.zero_grad()
        """),
        # accelerate scales the loss itself
        Valid("""
            for i, batch in enumerate(loader):
                loss = model(**batch).loss
                accelerator.backward(loss)
                if (i + 1) % accum == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # the loss comes from a helper we cannot see into
        Valid("""
            for i, batch in enumerate(loader):
                loss = compute_loss(model, batch)
                loss.backward()
                if (i + 1) % accum == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # not accumulation: gradients are cleared every batch
        Valid("""
            for i, (x, y) in enumerate(loader):
                opt.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                if i % 2 == 0:
                    opt.step()
        """),
        Valid("""
            count = 0
            for x, y in loader:
                loss = criterion(model(x), y) / accum_steps
                loss.backward()
                count += 1
                if count >= accum_steps:
                    optimizer.step()
                    optimizer.zero_grad()
                    count = 0
        """),
        # a counter that is never reset is not an accumulation gate (here: warm-up, then every batch)
        Valid("""
            seen = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                seen += 1
                if seen >= warmup:
                    optimizer.step()
                optimizer.zero_grad()
        """),
        # a batch-size normalisation, then the accumulation division: two divisions, both legitimate
        Valid("""
            for i, (x, y) in enumerate(loader):
                loss = sum_criterion(model(x), y) / x.size(0)
                loss = loss / args.grad_accum
                loss.backward()
                if (i + 1) % args.accum_steps == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # divided by a batch size or a token count: a normalisation, not an accumulation count
        Valid("""
            def train(args, model, loader, opt, criterion, batch_size):
                for i, (x, y) in enumerate(loader):
                    loss = criterion(model(x), y)
                    loss = loss / batch_size
                    loss.backward()
                    if (i + 1) % args.accum_steps == 0:
                        opt.step()
                        opt.zero_grad()
        """),
        Valid("""
            for i, batch in enumerate(loader):
                loss = model(**batch).loss / args.num_tokens_accumulated
                loss.backward()
                if (i + 1) % args.accum_steps == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # an average of two losses, not a scaling for accumulation
        Valid("""
            for i, (x, y) in enumerate(loader):
                loss = (criterion(model(x), y) + aux_criterion(model(x), y)) / 2
                loss.backward()
                if (i + 1) % 4 == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # one count under two names
        Valid("""
            accum_steps = args.accum_steps
            grad_accum = accum_steps
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                (loss / grad_accum).backward()
                if (i + 1) % accum_steps == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # counts on different objects, or passed in by the caller: they may hold the same number
        Valid("""
            def train(model, loader, opt, criterion, accum_steps, grad_accum):
                for i, (x, y) in enumerate(loader):
                    loss = criterion(model(x), y) / grad_accum
                    loss.backward()
                    if (i + 1) % accum_steps == 0:
                        opt.step()
                        opt.zero_grad()
        """),
        Valid("""
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / args.grad_accum
                loss.backward()
                if (i + 1) % cfg.accum_steps == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # `args.accum` has a default, but the command line may set it to 2
        Valid("""
            parser.add_argument("--accum", type=int, default=4)
            args = parser.parse_args()
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / 2
                loss.backward()
                if (i + 1) % args.accum == 0:
                    opt.step()
                    opt.zero_grad()
        """),
    ]
    INVALID = [
        Invalid(
            """
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                loss.backward()
                if (i + 1) % accum_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
            line=3,
            fixed="""
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                (loss / accum_steps).backward()
                if (i + 1) % accum_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            for step, batch in enumerate(loader):
                outputs = model(**batch)
                loss = outputs.loss
                scaler.scale(loss).backward()
                if (step + 1) % args.gradient_accumulation_steps == 0:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
            """,
            line=4,
            fixed="""
            for step, batch in enumerate(loader):
                outputs = model(**batch)
                loss = outputs.loss
                scaler.scale(loss / args.gradient_accumulation_steps).backward()
                if (step + 1) % args.gradient_accumulation_steps == 0:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
            """,
        ),
        # accumulation counted by hand: `if count >= k:` ... `count = 0`
        Invalid(
            """
            count = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                count += 1
                if count >= accum_steps:
                    optimizer.step()
                    optimizer.zero_grad()
                    count = 0
            """,
            line=4,
            fixed="""
            count = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                (loss / accum_steps).backward()
                count += 1
                if count >= accum_steps:
                    optimizer.step()
                    optimizer.zero_grad()
                    count = 0
            """,
        ),
        # divided by another accumulation count than the one the optimizer steps on
        Invalid(
            """
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                loss = loss / args.grad_accum
                loss.backward()
                if (i + 1) % args.accum_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
            line=3,
            column=18,
            message="gradients are accumulated over `args.accum_steps` batches but the loss is divided by "
                    "`args.grad_accum`, not by `args.accum_steps`",
            fixed="""
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y)
                loss = loss / args.accum_steps
                loss.backward()
                if (i + 1) % args.accum_steps == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / 8
                loss.backward()
                if (i + 1) % 4 == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
            line=2,
            fixed="""
            for i, (x, y) in enumerate(loader):
                loss = criterion(model(x), y) / 4
                loss.backward()
                if (i + 1) % 4 == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            grad_accum_steps = 2
            accumulation_steps = 8
            count = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                scaler.scale(loss / grad_accum_steps).backward()
                count += 1
                if count >= accumulation_steps:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
                    count = 0
            """,
            line=6,
            fixed="""
            grad_accum_steps = 2
            accumulation_steps = 8
            count = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                scaler.scale(loss / accumulation_steps).backward()
                count += 1
                if count >= accumulation_steps:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad()
                    count = 0
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        for loop in program.loops:
            effects = flow.loop_effects(loop)
            gates = [(gate, mod.right) for gate, mod in accumulation_gates(program, loop, effects)] \
                or counter_gates(program, loop, effects)
            if not gates:
                continue
            gate, steps = gates[0]
            k = int_value(program, steps)
            if k is not None and k <= 1:
                continue
            if any(e.kind == ZERO_GRAD and not e.inside(gate) for e in effects):
                continue  # cleared every batch: not accumulation
            for e in effects:
                if e.kind != BACKWARD or e.inside(gate) or not e.direct or e.arg is None:
                    continue
                if enclosing_loop(program, e.site) is not loop:
                    continue
                if _is_accelerate(e):
                    continue
                division = single_division(program, ctx.dataflow, loop, e.site, e.arg)
                if division is not None:
                    if another_count(program, loop, steps, division):
                        message = _wrong_divisor_message(program, steps, division)
                        yield self.finding(division.divisor, message, _divisor_fix(program, loop, steps, division))
                    continue
                if _scaled(program, flow, e.arg, e.site, loop):
                    continue
                yield self.finding(e.site, fix=_fix(program, e, steps))


def _is_accelerate(e) -> bool:
    call = e.site
    return isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and \
        looks_like_accelerator(dotted_name(call.func.value) or "")


def _scaled(program: ProgramModel, flow, loss: cst.BaseExpression, site: cst.CSTNode, loop: cst.CSTNode) -> bool:
    """True when the loss is (or may be) divided; False only when it evidently is not."""
    if has_scaling(loss):
        return True
    name = dotted_name(loss)
    if name is None:
        return True
    assigned = []
    for node in walk(loop.body):
        if isinstance(node, cst.AugAssign) and dotted_name(node.target) == name:
            if isinstance(node.operator, (cst.DivideAssign, cst.MultiplyAssign)):
                return True
            assigned.append(node.value)
        elif isinstance(node, cst.Assign) and any(dotted_name(t.target) == name for t in node.targets):
            assigned.append(node.value)
        elif isinstance(node, cst.AnnAssign) and dotted_name(node.target) == name and node.value is not None:
            assigned.append(node.value)
        elif isinstance(node, cst.Param) and node.name.value == name:
            return True  # comes from the caller
    if not assigned:
        return True
    for value in assigned:
        if has_scaling(value):
            return True
        if not evidently_raw_loss(program, value):
            return True
    return False


def _fix(program: ProgramModel, e, k: cst.BaseExpression) -> NodeFix | None:
    if dotted_name(k) is None and not isinstance(k, cst.Integer):
        return None
    loss = e.arg
    if not isinstance(loss, (cst.Name, cst.Attribute)):
        return None
    k_code = program.code_for(k)
    call = e.site
    if isinstance(call.func, cst.Attribute) and call.func.value is loss:
        return NodeFix("Divide the loss by the accumulation steps", (Replace(loss, f"({program.code_for(loss)} / {k_code})"),), UNSAFE)
    return NodeFix("Divide the loss by the accumulation steps", (Replace(loss, f"{program.code_for(loss)} / {k_code}"),), UNSAFE)


def _wrong_divisor_message(program: ProgramModel, k: cst.BaseExpression, division: Division) -> str:
    k_code, d_code = program.code_for(k), program.code_for(division.divisor)
    return f"gradients are accumulated over `{k_code}` batches but the loss is divided by `{d_code}`, not by `{k_code}`"


def _divisor_fix(program: ProgramModel, loop: cst.CSTNode, k: cst.BaseExpression,
                 division: Division) -> NodeFix | None:
    """Divide by the gate's ``k`` instead: only when ``k`` is a literal or a name bound nowhere in the loop."""
    if not isinstance(k, cst.Integer):
        name = dotted_name(k)
        if name is None:
            return None
        inside = {id(n) for n in walk(loop)}
        if any(id(b.node) in inside for b in program.bindings.get(name.split(".")[0], [])):
            return None
    return NodeFix("Divide the loss by the accumulation steps of the gate",
                   (Replace(division.divisor, program.code_for(k)),), UNSAFE)
