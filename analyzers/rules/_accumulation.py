"""Gradient accumulation, for SAN104 / SAN105: the ``if step % k == 0:`` gates around an optimizer step."""

from __future__ import annotations

import libcst as cst

from ..flow import BACKWARD, OPT_STEP, Effect
from ..model import ProgramModel
from ..syntax import LOOP_TYPES, modulo_in, walk


def accumulation_gates(program: ProgramModel, loop: cst.CSTNode, effects: list[Effect]) -> list[tuple[cst.If, cst.BinaryOperation]]:
    """`if ... % k ...:` statements inside ``loop`` whose body steps an optimizer on gradients accumulated
    outside it (a gate that also runs the backward alternates updates, as GANs do with ``n_critic``)."""
    gates = []
    seen: set[int] = set()
    for e in effects:
        if e.kind != OPT_STEP:
            continue
        after = e.ctx_after(loop)
        for i, c in enumerate(after):
            if isinstance(c, LOOP_TYPES):
                break
            if isinstance(c, cst.If) and id(c) not in seen:
                nxt = after[i + 1] if i + 1 < len(after) else None
                if nxt is not None and nxt is c.orelse:
                    continue
                mod = modulo_in(c.test)
                if mod is not None:
                    seen.add(id(c))
                    if not any(b.kind == BACKWARD and any(x is c for x in b.ctx) for b in effects):
                        gates.append((c, mod))  # backward inside the gate too: alternation (n_critic), not accumulation
                    break
    return gates


def counter_gates(program: ProgramModel, loop: cst.CSTNode, effects: list[Effect]) -> list[tuple[cst.If, cst.BaseExpression]]:
    """``if count >= k:`` (or ``count == k``) gates inside ``loop`` that step an optimizer and reset the
    counter (``count = 0``), with ``count += 1`` in the loop outside the gate and the backward outside it:
    accumulation over ``k`` batches counted by hand. Returns (gate, k)."""
    gates = []
    for e in effects:
        if e.kind != OPT_STEP:
            continue
        after = e.ctx_after(loop)
        position = next((i for i, c in enumerate(after) if isinstance(c, cst.If)), None)
        if position is None or any(isinstance(c, LOOP_TYPES) for c in after[:position]):
            continue
        gate = after[position]
        if any(g is gate for g, _ in gates):
            continue
        found = _counter_test(gate.test)
        if found is None:
            continue
        counter, k = found
        if any(b.kind == BACKWARD and b.inside(gate) for b in effects):
            continue
        if _resets(gate.body, counter) and _increments_outside(loop, gate, counter):
            gates.append((gate, k))
    return gates


def _counter_test(test: cst.BaseExpression) -> tuple[str, cst.BaseExpression] | None:
    """``count >= k`` / ``count == k`` / ``k <= count``: (counter name, k)."""
    if not isinstance(test, cst.Comparison) or len(test.comparisons) != 1:
        return None
    op, right, left = test.comparisons[0].operator, test.comparisons[0].comparator, test.left
    if isinstance(op, (cst.GreaterThanEqual, cst.Equal)) and isinstance(left, cst.Name):
        return left.value, right
    if isinstance(op, cst.LessThanEqual) and isinstance(right, cst.Name):
        return right.value, left
    return None


def _resets(body: cst.CSTNode, counter: str) -> bool:
    return any(isinstance(n, cst.Assign) and len(n.targets) == 1 and isinstance(n.targets[0].target, cst.Name)
               and n.targets[0].target.value == counter and isinstance(n.value, cst.Integer) and n.value.value == "0"
               for n in walk(body))


def _increments_outside(loop: cst.CSTNode, gate: cst.If, counter: str) -> bool:
    inside = {id(n) for n in walk(gate)}
    return any(isinstance(n, cst.AugAssign) and isinstance(n.operator, cst.AddAssign) and id(n) not in inside
               and isinstance(n.target, cst.Name) and n.target.value == counter
               and isinstance(n.value, cst.Integer) and n.value.value == "1"
               for n in walk(loop.body))
