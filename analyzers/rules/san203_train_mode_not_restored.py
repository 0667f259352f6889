from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..flow import BACKWARD, EVAL, FORWARD, TRAIN, is_conditional
from ..lookups import same_object
from ..model import ProgramModel
from ..rule import SAFE, InsertBefore, Invalid, NodeFix, Rule, Valid
from ..syntax import dotted_name, loop_body_block, loop_header, top_statement_in

_TRAIN, _EVAL, _MAYBE_EVAL, _UNKNOWN = "train", "eval", "maybe-eval", "unknown"


class TrainModeNotRestored(Rule):
    """A loop that switches a model to `eval()` (directly or through an evaluation helper) and trains
    it again — in the same iteration or the next one — without `model.train()` first. Quiet when the
    helper restores the mode itself, when `model.train()` opens every iteration, with `train(flag)`, and
    for models that are never optimised (a frozen teacher)."""

    code = "SAN203"
    name = "train-mode-not-restored"
    message = "the model is switched to eval() and trained again without model.train()"
    why = """
        `model.eval()` is sticky: after the first validation the rest of training runs with dropout
        disabled and batch-norm frozen on its running statistics. Nothing fails; the model just trains
        worse (and differently from the first epoch), which is hard to trace back.
    """
    example = """
        model.train()
        for epoch in range(epochs):
            for x, y in train_loader:
                ...
                loss.backward()
                optimizer.step()
            evaluate(model, val_loader)   # calls model.eval()
    """
    fix_doc = """
        Call `model.train()` at the start of each epoch's training (or at the end of the evaluation
        helper). The quick fix inserts `model.train()` before the training part of the loop body.
    """
    known_problems = """
        The mode of a model is tracked by its name through the loop; a mode restored through an alias, a
        callback or a helper the rule cannot read is not seen (the rule then assumes the mode is not restored
        only when it saw the switch to eval).
    """
    fix_safety = """
        Safe: `model.train()` is inserted right before the statement that holds the first training forward
        pass, where the model was meant to be in training mode; no other code runs between the two. Not
        offered when a mode switch happens inside that statement.
    """
    VALID = [
        Valid("""
            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                model.eval()
                validate(model)
        """),
        # the helper restores the mode
        Valid("""
            def evaluate(model):
                model.eval()
                run(model)
                model.train()

            for epoch in range(10):
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model)
        """),
        # train(flag)
        Valid("""
            for epoch in range(10):
                for phase in ['train', 'val']:
                    model.train(phase == 'train')
                    for x, y in loaders[phase]:
                        out = model(x)
                        if phase == 'train':
                            loss_fn(out, y).backward()
                            opt.step()
        """),
        # if / else on the phase
        Valid("""
            for epoch in range(10):
                for phase in ['train', 'val']:
                    if phase == 'train':
                        model.train()
                    else:
                        model.eval()
                    for x, y in loaders[phase]:
                        out = model(x)
                        if phase == 'train':
                            loss_fn(out, y).backward()
                            opt.step()
        """),
        # a frozen backbone inside a trained model
        Valid("""
            for epoch in range(10):
                model.train()
                model.backbone.eval()
                for x, y in loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
        """),
        # a frozen teacher in eval mode
        Valid("""
            optimizer = torch.optim.SGD(student.parameters(), lr=0.1)
            for x, y in loader:
                teacher.eval()
                t = teacher(x)
                s = student(x)
                optimizer.zero_grad()
                kd(s, t).backward()
                optimizer.step()
        """),
    ]
    INVALID = [
        Invalid(
            """
            def evaluate(model, loader):
                model.eval()
                for x, y in loader:
                    model(x)

            for epoch in range(10):
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model, val_loader)
            """,
            line=6,
            fixed="""
            def evaluate(model, loader):
                model.eval()
                for x, y in loader:
                    model(x)

            for epoch in range(10):
                model.train()
                for x, y in train_loader:
                    opt.zero_grad()
                    loss_fn(model(x), y).backward()
                    opt.step()
                evaluate(model, val_loader)
            """,
        ),
        # validation first, then training, in the same iteration
        Invalid(
            """
            for epoch in range(10):
                net.eval()
                with torch.no_grad():
                    val = net(xv)
                opt.zero_grad()
                loss_fn(net(x), y).backward()
                opt.step()
            """,
            line=1,
            fixed="""
            for epoch in range(10):
                net.eval()
                with torch.no_grad():
                    val = net(xv)
                opt.zero_grad()
                net.train()
                loss_fn(net(x), y).backward()
                opt.step()
            """,
        ),
        # mid-epoch evaluation that does not switch back
        Invalid(
            """
            def validate(model):
                model.eval()
                model(xv)

            model.train()
            for i, (x, y) in enumerate(train_loader):
                opt.zero_grad()
                loss_fn(model(x), y).backward()
                opt.step()
                if i % 100 == 0:
                    validate(model)
            """,
            line=6,
            fixed="""
            def validate(model):
                model.eval()
                model(xv)

            model.train()
            for i, (x, y) in enumerate(train_loader):
                opt.zero_grad()
                model.train()
                loss_fn(model(x), y).backward()
                opt.step()
                if i % 100 == 0:
                    validate(model)
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        flagged: set[int] = set()
        # innermost loops first, so an outer loop is skipped when an inner one is reported
        loops = sorted(program.loops, key=lambda l: -sum(1 for _ in program.ancestors(l)))
        for loop in loops:
            effects = flow.loop_effects(loop)
            if not any(e.kind == EVAL or (e.kind == TRAIN and e.flag is False) for e in effects):
                continue
            if not any(e.kind == BACKWARD for e in effects):
                continue
            if flagged and any(id(c) in flagged for e in effects for c in e.ctx_after(loop)):
                continue
            bug = _simulate(program, flow, loop, effects)
            if bug is None:
                continue
            flagged.add(id(loop))
            target, forward = bug
            start, end = loop_header(loop)
            yield self.finding(start, end_node=end,
                               message=f"{target} is switched to eval() and trained again without {target}.train()",
                               fix=_fix(program, loop, effects, target, forward))


def _trained(flow, target: str) -> bool:
    names = flow.optimizer_arg_names()
    if not names:
        return True  # optimizers built elsewhere: cannot tell
    bare = target[5:] if target.startswith("self.") else target
    return any(same_object(target, n) or same_object(bare, n[5:] if n.startswith("self.") else n) for n in names)


def _simulate(program, flow, loop, effects):
    """Run the loop body twice over abstract mode states per model; returns (model, forward effect)
    when a backward happens while a model that was forwarded with grad is in eval mode."""
    state: dict[str, str] = {}
    evaluated = {e.target for e in effects if e.kind in (EVAL, TRAIN) and e.target}
    for _ in range(2):
        forwarded: dict[str, object] = {}
        for e in effects:
            if e.kind in (EVAL, TRAIN) and e.target:
                to_eval = e.kind == EVAL or e.flag is False
                cond = is_conditional(e, loop)
                # switching a module switches its submodules, not its parent (a frozen backbone)
                for name in [n for n in evaluated if n == e.target or n.startswith(e.target + ".")]:
                    current = state.get(name, _TRAIN)
                    if e.kind == TRAIN and e.flag is None:
                        state[name] = _UNKNOWN
                    elif to_eval:
                        state[name] = _EVAL if not cond else (_MAYBE_EVAL if current in (_TRAIN, _MAYBE_EVAL) else current)
                    else:
                        state[name] = _TRAIN if not cond else _UNKNOWN
            elif e.kind == FORWARD and e.target and e.nograd is False:
                for name in evaluated:
                    if (name == e.target or e.target.startswith(name + ".")) and name not in forwarded:
                        forwarded[name] = e
            elif e.kind == BACKWARD:
                for name, fwd in forwarded.items():
                    if state.get(name, _TRAIN) in (_EVAL, _MAYBE_EVAL) and _trained(flow, name):
                        return name, fwd
                forwarded = {}
    return None


def _fix(program: ProgramModel, loop, effects, target: str, forward) -> NodeFix | None:
    if dotted_name(_safe_expr(target)) != target:
        return None
    body = loop_body_block(loop)
    if body is None:
        return None
    stmt = top_statement_in(program, forward.site, body)
    if stmt is None:
        return None
    # no mode switch inside that statement before the forward
    for e in effects:
        if e is forward:
            break
        if e.kind in (EVAL, TRAIN) and top_statement_in(program, e.site, body) is stmt:
            return None
    # a loop body reached before the statement must not evaluate after the insertion point... keep simple:
    # the insertion happens right before the statement that holds the first training forward.
    return NodeFix(f"Insert {target}.train()", (InsertBefore(stmt, f"{target}.train()"),), SAFE)


def _safe_expr(text: str):
    try:
        return cst.parse_expression(text)
    except Exception:
        return None
