from __future__ import annotations

import re

import libcst as cst

from ..flow import BACKWARD, flow_of, names_in
from ..model import ProgramModel, dotted_name, walk
from ..rule import Invalid, NodeEdit, NodeFix, Rule, SAFE, UNSAFE


class LossKeptWithGraph(Rule):
    """A loss that was backpropagated, then accumulated or stored across iterations as a tensor
    (`total += loss`, `total = total + loss`, `losses.append(loss)`) without `.item()` / `.detach()`.
    Quiet under `no_grad`, and when the stored values are themselves backpropagated later (REINFORCE
    style episode losses, a loss built with `+=`)."""

    code = "SAN106"
    name = "loss-kept-with-graph"
    message = "the loss is kept as a tensor with its autograd graph; use loss.item() (or .detach())"
    why = """
        A loss tensor references the whole autograd graph of its forward pass. Summing it into a running
        total (or appending it to a list) that lives across iterations keeps every iteration's graph —
        activations included — alive: memory grows every batch until the epoch ends or the process runs
        out of memory. (PyTorch FAQ: "My model reports cuda runtime error(2): out of memory".)
    """
    example = """
        total_loss = 0
        for x, y in loader:
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total_loss += loss
    """
    fix_doc = """
        Accumulate a Python number: `total_loss += loss.item()` (or keep a detached tensor with
        `loss.detach()` when the values are stacked later).
    """
    known_problems = """
        The rule tracks accumulators by name within one function; totals kept in containers passed to other
        functions, attributes set elsewhere or generators are not followed, and a loss kept on purpose for a
        later `backward()` through another name is reported.
    """
    fix_safety = """
        `.detach()` is safe: the stored value keeps its type and values and only drops the graph. `.item()` is
        unsafe: the accumulator becomes a Python float, and later code that treats it as a tensor
        (`total.cpu()`, `torch.stack(losses)`) would break.
    """
    VALID = [
        "total = 0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    total += loss.item()\n",
        "losses = []\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    losses.append(loss.detach())\n",
        # a loss built with += and then backpropagated
        "for x, y in loader:\n    loss = 0\n    for head in heads:\n        loss += criterion(head(x), y)\n    loss.backward()\n",
        # REINFORCE: per-step losses kept on purpose, backpropagated at the end of the episode
        "policy_losses = []\nfor t in range(T):\n    policy_losses.append(-log_prob * R)\nloss = torch.stack(policy_losses).sum()\nloss.backward()\n",
        # not backpropagated: an evaluation loop under no_grad
        "total = 0\nwith torch.no_grad():\n    for x, y in loader:\n        loss = criterion(model(x), y)\n        total += loss\n",
        # reset every iteration
        "for x, y in loader:\n    running = 0\n    loss = criterion(model(x), y)\n    loss.backward()\n    running += loss\n",
    ]
    INVALID = [
        Invalid(
            "total_loss = 0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    optimizer.step()\n    total_loss += loss\n",
            line=6,
            fixed="total_loss = 0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    optimizer.step()\n    total_loss += loss.item()\n",
        ),
        Invalid(
            "def train(model, loader):\n    losses = []\n    for x, y in loader:\n        loss = criterion(model(x), y)\n"
            "        loss.backward()\n        losses.append(loss)\n    return sum(losses) / len(losses)\n",
            line=6,
            fixed="def train(model, loader):\n    losses = []\n    for x, y in loader:\n        loss = criterion(model(x), y)\n"
            "        loss.backward()\n        losses.append(loss.item())\n    return sum(losses) / len(losses)\n",
        ),
        Invalid(
            "losses = []\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    losses.append(loss)\nprint(torch.stack(losses).mean())\n",
            line=5,
            fixed="losses = []\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    losses.append(loss.detach())\nprint(torch.stack(losses).mean())\n",
        ),
        Invalid(
            "epoch_loss = 0.0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    epoch_loss = epoch_loss + loss * x.size(0)\n",
            line=5,
            fixed="epoch_loss = 0.0\nfor x, y in loader:\n    loss = criterion(model(x), y)\n    loss.backward()\n    epoch_loss = epoch_loss + loss.item() * x.size(0)\n",
        ),
    ]

    def check(self, model: ProgramModel):
        flow = flow_of(model)
        for loop in model.loops:
            effects = flow.loop_effects(loop)
            backwarded: set[str] = set()
            for e in effects:
                if e.kind == BACKWARD and e.direct and e.arg is not None and e.nograd is False:
                    name = dotted_name(e.arg)
                    if name is not None:
                        backwarded.add(name)
            if not backwarded:
                continue
            scope = flow.scope_node(loop)
            body = getattr(loop, "body", None)
            if body is None:
                continue
            for stmt, acc, value in _accumulations(body):
                if _nearest_loop(model, stmt) is not loop:
                    continue
                loss_node = _loss_in(value, backwarded)
                if loss_node is None or acc in backwarded or acc.split(".")[0] == loss_node.value:
                    continue
                if _under_no_grad(model, stmt, loop):
                    continue
                if not _persistent(model, scope, loop, acc):
                    continue
                usage = _later_usage(model, scope, acc, flow, loop)
                if usage == "backward":
                    continue
                method = "detach" if usage == "tensor" else "item"
                yield self.finding(loss_node, fix=NodeFix(
                    f"Use .{method}()", (NodeEdit("replace", loss_node, f"{loss_node.value}.{method}()"),), SAFE if method == "detach" else UNSAFE))


def _accumulations(body: cst.CSTNode):
    """(statement, accumulator, value) for `acc += v`, `acc = acc + v`, `acc.append(v)`."""
    for node in walk(body):
        if isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            continue
        if isinstance(node, cst.AugAssign) and isinstance(node.operator, cst.AddAssign):
            acc = dotted_name(node.target)
            if acc:
                yield node, acc, node.value
        elif isinstance(node, cst.Assign) and len(node.targets) == 1:
            acc = dotted_name(node.targets[0].target)
            value = node.value
            if acc and isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Add) \
                    and dotted_name(value.left) == acc:
                yield node, acc, value.right
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and node.func.attr.value == "append" \
                and len(node.args) == 1:
            acc = dotted_name(node.func.value)
            if acc:
                yield node, acc, node.args[0].value


def _loss_in(value: cst.BaseExpression, backwarded: set[str]) -> cst.Name | None:
    if isinstance(value, cst.Name) and value.value in backwarded:
        return value
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, cst.Multiply):
        for side in (value.left, value.right):
            if isinstance(side, cst.Name) and side.value in backwarded:
                return side
    return None


def _nearest_loop(model, node):
    for ancestor in model.ancestors(node):
        if isinstance(ancestor, (cst.For, cst.While)):
            return ancestor
        if isinstance(ancestor, (cst.FunctionDef, cst.Lambda)):
            return None
    return None


def _under_no_grad(model: ProgramModel, stmt, loop) -> bool:
    from ..flow import _with_no_grad, decorated_no_grad

    for ancestor in model.ancestors(stmt):
        if isinstance(ancestor, cst.With) and _with_no_grad(model, ancestor, False) is not False:
            return True
        if isinstance(ancestor, cst.FunctionDef):
            return decorated_no_grad(model, ancestor)
    return False


class _ScopeIndex:
    """What SAN106 asks about a scope, collected in one walk: assignments by name, the names used in
    `stack` / `cat` calls, and (targets, value names) of every assignment."""

    def __init__(self, scope: cst.CSTNode) -> None:
        self.assigned: dict[str, list[cst.CSTNode]] = {}
        self.stacked: set[str] = set()
        self.assignments: list[tuple[set[str], set[str]]] = []
        self.backwarded: set[str] | None = None
        for node in walk(scope):
            if isinstance(node, (cst.Assign, cst.AnnAssign)):
                targets = [t.target for t in node.targets] if isinstance(node, cst.Assign) else [node.target]
                value_names = names_in(node.value) if node.value is not None else set()
                target_names: set[str] = set()
                for t in targets:
                    name = dotted_name(t)
                    if name is not None and name not in value_names:
                        self.assigned.setdefault(name, []).append(node)
                    target_names |= names_in(t)
                self.assignments.append((target_names, value_names))
            elif isinstance(node, cst.Call):
                callee = dotted_name(node.func) or ""
                if re.search(r"(^|\.)(stack|cat|concat|vstack|hstack)$", callee):
                    self.stacked |= names_in(node)


def _index(model: ProgramModel, scope) -> _ScopeIndex:
    cache = model.__dict__.setdefault("_torchsanity_san106", {})
    index = cache.get(id(scope))
    if index is None:
        index = cache[id(scope)] = _ScopeIndex(scope)
    return index


def _persistent(model: ProgramModel, scope, loop, acc: str) -> bool:
    """The accumulator outlives an iteration: an attribute, or a name assigned before the loop and
    not reset inside it."""
    if "." in acc:
        return True
    nodes = _index(model, scope).assigned.get(acc, [])
    if any(_inside(model, node, loop) for node in nodes):
        return False  # reset inside the loop
    return bool(nodes)


def _inside(model, node, loop) -> bool:
    return any(a is loop for a in model.ancestors(node))


def _later_usage(model: ProgramModel, scope, acc: str, flow, loop) -> str:
    """"backward" when the accumulated values are backpropagated later, "tensor" when they are
    stacked / concatenated as tensors, else "other"."""
    index = _index(model, scope)
    if index.backwarded is None:
        index.backwarded = set()
        for e in flow.scope(scope).effects:
            if e.kind == BACKWARD and e.arg is not None:
                index.backwarded |= names_in(e.arg)
    backwarded_names = index.backwarded
    head = acc.split(".")[0]
    if acc in backwarded_names or head in backwarded_names:
        return "backward"
    for targets, values in index.assignments:
        if head in values and targets & backwarded_names:
            return "backward"
    return "tensor" if head in index.stacked else "other"
