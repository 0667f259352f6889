from __future__ import annotations

import re

import libcst as cst

from ..flow import (
    BACKWARD,
    ZERO_GRAD,
    accumulation_gates,
    flow_of,
    int_value,
    kind_of_name,
)
from ..model import LOSS, ProgramModel, dotted_name, walk
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE

_LOSS_FUNCTIONS = re.compile(r"(loss|cross_entropy|mse|nll|l1|bce|kl_div|criterion)", re.I)


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
        The accumulation factor must be visible at the `% k` test; a loss already scaled inside a helper, by a
        `GradScaler` wrapper or by a loss function's own reduction is not seen, and a deliberately summed loss
        (rare) is reported too.
    """
    fix_safety = """
        Unsafe: dividing the loss by k divides the gradients by k, so the effective learning rate of a run that
        was tuned with the unscaled loss changes. Apply it with `--unsafe-fixes` and re-tune if needed.
    """
    VALID = [
        "for i, (x, y) in enumerate(loader):\n    loss = criterion(model(x), y) / accum\n    loss.backward()\n    if (i + 1) % accum == 0:\n        opt.step()\n        opt.zero_grad()\n",
        "for i, (x, y) in enumerate(loader):\n    loss = criterion(model(x), y)\n    loss = loss / accum\n    loss.backward()\n    if (i + 1) % accum == 0:\n        opt.step()\n        opt.zero_grad()\n",
        "for i, (x, y) in enumerate(loader):\n    loss = criterion(model(x), y)\n    loss /= accum\n    scaler.scale(loss).backward()\n    if (i + 1) % accum == 0:\n        scaler.step(opt)\n        scaler.update()\n        opt.zero_grad()\n",
        # accelerate scales the loss itself
        "for i, batch in enumerate(loader):\n    loss = model(**batch).loss\n    accelerator.backward(loss)\n    if (i + 1) % accum == 0:\n        opt.step()\n        opt.zero_grad()\n",
        # the loss comes from a helper we cannot see into
        "for i, batch in enumerate(loader):\n    loss = compute_loss(model, batch)\n    loss.backward()\n    if (i + 1) % accum == 0:\n        opt.step()\n        opt.zero_grad()\n",
        # not accumulation: gradients are cleared every batch
        "for i, (x, y) in enumerate(loader):\n    opt.zero_grad()\n    loss = criterion(model(x), y)\n    loss.backward()\n    if i % 2 == 0:\n        opt.step()\n",
    ]
    INVALID = [
        Invalid(
            "for i, (x, y) in enumerate(loader):\n    loss = criterion(model(x), y)\n    loss.backward()\n"
            "    if (i + 1) % accum_steps == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n",
            line=3,
            fixed="for i, (x, y) in enumerate(loader):\n    loss = criterion(model(x), y)\n    (loss / accum_steps).backward()\n"
            "    if (i + 1) % accum_steps == 0:\n        optimizer.step()\n        optimizer.zero_grad()\n",
        ),
        Invalid(
            "for step, batch in enumerate(loader):\n    outputs = model(**batch)\n    loss = outputs.loss\n"
            "    scaler.scale(loss).backward()\n    if (step + 1) % args.gradient_accumulation_steps == 0:\n"
            "        scaler.step(optimizer)\n        scaler.update()\n        optimizer.zero_grad()\n",
            line=4,
            fixed="for step, batch in enumerate(loader):\n    outputs = model(**batch)\n    loss = outputs.loss\n"
            "    scaler.scale(loss / args.gradient_accumulation_steps).backward()\n    if (step + 1) % args.gradient_accumulation_steps == 0:\n"
            "        scaler.step(optimizer)\n        scaler.update()\n        optimizer.zero_grad()\n",
        ),
    ]

    def check(self, model: ProgramModel):
        flow = flow_of(model)
        for loop in model.loops:
            effects = flow.loop_effects(loop)
            gates = accumulation_gates(model, loop, effects)
            if not gates:
                continue
            gate, mod = gates[0]
            k = int_value(model, mod.right)
            if k is not None and k <= 1:
                continue
            if any(e.kind == ZERO_GRAD and not e.inside(gate) for e in effects):
                continue  # cleared every batch: not accumulation
            for e in effects:
                if e.kind != BACKWARD or e.inside(gate) or not e.direct or e.arg is None:
                    continue
                if _nearest_loop(model, e.site) is not loop:
                    continue
                if _is_accelerate(e):
                    continue
                if _scaled(model, flow, e.arg, e.site, loop):
                    continue
                yield self.finding(e.site, fix=_fix(model, e, mod.right))


def _nearest_loop(model, node):
    for ancestor in model.ancestors(node):
        if isinstance(ancestor, (cst.For, cst.While)):
            return ancestor
        if isinstance(ancestor, cst.FunctionDef):
            return None
    return None


def _is_accelerate(e) -> bool:
    call = e.site
    return isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and \
        re.search(r"accelerator", dotted_name(call.func.value) or "", re.I) is not None


def _has_scaling(expr: cst.CSTNode) -> bool:
    return any(isinstance(n, cst.BinaryOperation) and isinstance(n.operator, (cst.Divide, cst.Multiply))
               for n in walk(expr))


def _scaled(model: ProgramModel, flow, loss: cst.BaseExpression, site: cst.CSTNode, loop: cst.CSTNode) -> bool:
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
        if not _evidently_raw_loss(model, value):
            return True
    return False


def _evidently_raw_loss(model: ProgramModel, value: cst.BaseExpression) -> bool:
    """A criterion call, a functional loss, a model output's `.loss`, or a sum of those."""
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Add, cst.Subtract)):
        return _evidently_raw_loss(model, value.left) and _evidently_raw_loss(model, value.right)
    if isinstance(value, cst.Attribute) and value.attr.value == "loss":
        return True
    if isinstance(value, cst.Subscript) and isinstance(value.value, cst.Name):
        return False
    if isinstance(value, cst.Call):
        name = dotted_name(value.func)
        if name is None:
            return False
        if kind_of_name(model, name) == LOSS:
            return True
        qual = model.qualname(value.func) or ""
        if qual.startswith("torch.nn.functional.") and _LOSS_FUNCTIONS.search(qual.rsplit(".", 1)[-1]):
            return True
        if "." not in name and name in model.functions:
            return False
        last = name.rsplit(".", 1)[-1]
        return bool(re.fullmatch(r"(criterion|loss_fn|loss_func|lossfn|criteria|loss_function)", last))
    return False


def _fix(model: ProgramModel, e, k: cst.BaseExpression) -> NodeFix | None:
    if dotted_name(k) is None and not isinstance(k, cst.Integer):
        return None
    loss = e.arg
    if not isinstance(loss, (cst.Name, cst.Attribute)):
        return None
    k_code = model.code_for(k)
    call = e.site
    if isinstance(call.func, cst.Attribute) and call.func.value is loss:
        return NodeFix("Divide the loss by the accumulation steps", (NodeEdit("replace", loss, f"({model.code_for(loss)} / {k_code})"),), UNSAFE)
    return NodeFix("Divide the loss by the accumulation steps", (NodeEdit("replace", loss, f"{model.code_for(loss)} / {k_code}"),), UNSAFE)
