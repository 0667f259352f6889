from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import int_value
from ..model import ProgramModel
from ..rule import SAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import enclosing_loop, walk
from ._accumulation import accumulation_gates


class AccumulationOffByOne(Rule):
    """`if i % k == 0: optimizer.step()` where `i` counts batches from 0 (`enumerate(loader)`): the
    first step comes after a single batch, and every later one after k."""

    code = "SAN104"
    name = "accumulation-off-by-one"
    message = "i counts from 0, so `i % k == 0` steps after the first batch; use `(i + 1) % k == 0`"
    why = """
        With `enumerate` the first index is 0 and `0 % k == 0`: the optimizer steps after the very first
        micro-batch (with 1/k of the intended gradient), and the last k-1 batches of the epoch are
        accumulated into the next epoch's first step (or lost).
    """
    example = """
        for i, (x, y) in enumerate(loader):
            (loss_fn(model(x), y) / k).backward()
            if i % k == 0:
                optimizer.step()
                optimizer.zero_grad()
    """
    fix_doc = """
        Count the batch as done before testing: `if (i + 1) % k == 0:` (or `enumerate(loader, start=1)`).
    """
    known_problems = """
        The rule needs the counter to come from `enumerate(...)` without a `start=` and the test to be a
        literal `i % k == 0`; counters kept by hand, `itertools.count` or a step counter incremented elsewhere
        are not followed.
    """
    fix_safety = """
        Safe: `(i + 1) % k` makes every step come after k batches, which is the bug the finding names; the
        counter itself is not changed.
    """
    VALID = [
        Valid("""
            for i, (x, y) in enumerate(loader):
                (loss_fn(model(x), y) / k).backward()
                if (i + 1) % k == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        Valid("""
            for i, (x, y) in enumerate(loader, 1):
                (loss_fn(model(x), y) / k).backward()
                if i % k == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        Valid("""
            for i, (x, y) in enumerate(loader, start=1):
                (loss_fn(model(x), y) / k).backward()
                if i % k == 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # logging, not stepping
        Valid("""
            for i, (x, y) in enumerate(loader):
                opt.zero_grad()
                loss.backward()
                opt.step()
                if i % 100 == 0:
                    print(loss.item())
        """),
        # a guard against the first batch
        Valid("""
            for i, (x, y) in enumerate(loader):
                loss.backward()
                if i % k == 0 and i > 0:
                    opt.step()
                    opt.zero_grad()
        """),
        # a counter incremented before the test
        Valid("""
            step = 0
            for x, y in loader:
                loss.backward()
                step += 1
                if step % k == 0:
                    opt.step()
                    opt.zero_grad()
        """),
    ]
    INVALID = [
        Invalid(
            """
            for i, (x, y) in enumerate(loader):
                (loss_fn(model(x), y) / 4).backward()
                if i % 4 == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
            line=3,
            fixed="""
            for i, (x, y) in enumerate(loader):
                (loss_fn(model(x), y) / 4).backward()
                if (i + 1) % 4 == 0:
                    optimizer.step()
                    optimizer.zero_grad()
            """,
        ),
        Invalid(
            """
            for step, batch in enumerate(tqdm(train_loader)):
                loss = model(**batch).loss / args.accum
                loss.backward()
                if not step % args.accum:
                    opt.step()
                    opt.zero_grad()
            """,
            line=4,
            fixed="""
            for step, batch in enumerate(tqdm(train_loader)):
                loss = model(**batch).loss / args.accum
                loss.backward()
                if not (step + 1) % args.accum:
                    opt.step()
                    opt.zero_grad()
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        for loop in program.loops:
            if not isinstance(loop, cst.For):
                continue
            index = _zero_based_index(program, loop)
            if index is None:
                continue
            for gate, mod in accumulation_gates(program, loop, flow.loop_effects(loop)):
                if enclosing_loop(program, gate) is not loop:
                    continue
                if not _is_zero_test(gate.test, mod):
                    continue
                if not (isinstance(mod.left, cst.Name) and mod.left.value == index):
                    continue
                k = int_value(program, mod.right)
                if k is not None and k <= 1:
                    continue
                if _reassigned(loop, index):
                    continue
                yield self.finding(gate.test, fix=NodeFix(
                    f"Use ({index} + 1) % k", (Replace(mod.left, f"({index} + 1)"),), SAFE))


def _zero_based_index(program: ProgramModel, loop: cst.For) -> str | None:
    it = loop.iter
    while isinstance(it, cst.Call) and program.call_name(it) != "enumerate" and it.args:
        it = it.args[0].value  # tqdm(enumerate(loader))
    if not isinstance(it, cst.Call) or program.call_name(it) != "enumerate":
        return None
    start = next((a.value for a in it.args if a.keyword and a.keyword.value == "start"), None)
    positional = [a for a in it.args if a.keyword is None and not a.star]
    if start is None and len(positional) > 1:
        start = positional[1].value
    if start is not None and int_value(program, start) != 0:
        return None
    if isinstance(loop.target, (cst.Tuple, cst.List)) and loop.target.elements:
        first = loop.target.elements[0].value
        if isinstance(first, cst.Name):
            return first.value
    return None


def _is_zero_test(test: cst.BaseExpression, mod: cst.BinaryOperation) -> bool:
    if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
        return test.expression is mod
    if isinstance(test, cst.Comparison) and test.left is mod and len(test.comparisons) == 1:
        target = test.comparisons[0]
        return isinstance(target.operator, cst.Equal) and isinstance(target.comparator, cst.Integer) \
            and target.comparator.value == "0"
    return False


def _reassigned(loop: cst.For, name: str) -> bool:
    for node in walk(loop.body):
        if isinstance(node, cst.AugAssign) and isinstance(node.target, cst.Name) and node.target.value == name:
            return True
        if isinstance(node, cst.AssignTarget) and isinstance(node.target, cst.Name) and node.target.value == name:
            return True
    return False
