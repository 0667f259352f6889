from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import BACKWARD, ZERO_GRAD
from ..lookups import int_value, kind_of_name
from ..model import ProgramModel
from ..name_guesses import looks_like_accelerator, looks_like_loss_function
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name, enclosing_loop, walk
from ..torch_api import LOSS, is_functional_loss
from ._accumulation import accumulation_gates, counter_gates


class AccumulationUnscaledLoss(Rule):
    """Gradient accumulation (the optimizer steps under `if ... % k ...:` while `backward()` runs every
    batch and nothing else clears the gradients) whose loss is not divided by the number of
    accumulation steps."""

    code = "SAN105"
    name = "accumulation-unscaled-loss"
    message = "gradients are accumulated over k batches but the loss is not divided by k"
    why = """
        Accumulated gradients are summed, not averaged: k micro-batches of loss L give k times the
        gradient of one batch of the combined size. The effective learning rate is k times larger than
        the one tuned for the big batch, and it changes whenever k does.
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
        `(loss / accum_steps).backward()`. (accelerate's `accelerator.backward` does this for you when the
        Accelerator is built with `gradient_accumulation_steps`.)
    """
    known_problems = """
        The accumulation factor must be visible at the `% k` test (or at an `if count >= k:` gate that resets
        its counter to 0); a loss already scaled inside a helper, by a
        `GradScaler` wrapper or by a loss function's own reduction is not seen, and a deliberately summed loss
        (rare) is reported too.
    """
    fix_safety = """
        Unsafe: dividing the loss by k divides the gradients by k, so the effective learning rate of a run that
        was tuned with the unscaled loss changes. Apply it with `--unsafe-fixes` and re-tune if needed.
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
                if _scaled(program, flow, e.arg, e.site, loop):
                    continue
                yield self.finding(e.site, fix=_fix(program, e, steps))


def _is_accelerate(e) -> bool:
    call = e.site
    return isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and \
        looks_like_accelerator(dotted_name(call.func.value) or "")


def _has_scaling(expr: cst.CSTNode) -> bool:
    return any(isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Divide, cst.Multiply))
               for n in walk(expr))


def _scaled(program: ProgramModel, flow, loss: cst.BaseExpression, site: cst.CSTNode, loop: cst.CSTNode) -> bool:
    """True when the loss is (or may be) divided; False only when it evidently is not."""
    if _has_scaling(loss):
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
        if _has_scaling(value):
            return True
        if not _evidently_raw_loss(program, value):
            return True
    return False


def _evidently_raw_loss(program: ProgramModel, value: cst.BaseExpression) -> bool:
    """A criterion call, a functional loss, a model output's `.loss`, or a sum of those."""
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Add, cst.Subtract)):
        return _evidently_raw_loss(program, value.left) and _evidently_raw_loss(program, value.right)
    if isinstance(value, cst.Attribute) and value.attr.value == "loss":
        return True
    if isinstance(value, cst.Subscript) and isinstance(value.value, cst.Name):
        return False
    if isinstance(value, cst.Call):
        name = dotted_name(value.func)
        if name is None:
            return False
        if kind_of_name(program, name) == LOSS:
            return True
        qual = program.qualname(value.func) or ""
        if is_functional_loss(qual):
            return True
        if "." not in name and name in program.functions:
            return False
        return looks_like_loss_function(name)
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
