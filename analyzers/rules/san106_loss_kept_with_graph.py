from __future__ import annotations

import re

import libcst as cst

from ..context import RuleContext
from ..effect_sites import decorated_no_grad, with_no_grad
from ..flow import BACKWARD
from ..model import STATEMENT_ONLY, ProgramModel
from ..rule import SAFE, UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import LOOP_TYPES, dotted_name, iter_children, names_in, walk


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
        later `backward()` through another name is reported. A meter's `update(loss)` counts only when the
        meter class is defined in the same file and its `update` sums the value without converting it;
        meters imported from elsewhere are not followed.
    """
    fix_safety = """
        `.detach()` is safe: the stored value keeps its type and values and only drops the graph. `.item()` is
        unsafe: the accumulator becomes a Python float, and later code that treats it as a tensor
        (`total.cpu()`, `torch.stack(losses)`) would break.
    """
    VALID = [
        Valid("""
            total = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                total += loss.item()
        """),
        Valid("""
            losses = []
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                losses.append(loss.detach())
        """),
        # a loss built with += and then backpropagated
        Valid("""
            for x, y in loader:
                loss = 0
                for head in heads:
                    loss += criterion(head(x), y)
                loss.backward()
        """),
        # REINFORCE: per-step losses kept on purpose, backpropagated at the end of the episode
        Valid("""
            policy_losses = []
            for t in range(T):
                policy_losses.append(-log_prob * R)
            loss = torch.stack(policy_losses).sum()
            loss.backward()
        """),
        # not backpropagated: an evaluation loop under no_grad
        Valid("""
            total = 0
            with torch.no_grad():
                for x, y in loader:
                    loss = criterion(model(x), y)
                    total += loss
        """),
        # a meter fed a Python number
        Valid("""
            class AverageMeter:
                def __init__(self):
                    self.sum, self.count = 0, 0
                def update(self, val, n=1):
                    self.sum += val * n
                    self.count += n
            meter = AverageMeter()
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                meter.update(loss.item(), x.size(0))
        """),
        # a meter whose update() converts the value itself
        Valid("""
            class Meter:
                def __init__(self):
                    self.total = 0.0
                def update(self, val):
                    self.total += float(val)
            meter = Meter()
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                meter.update(loss)
        """),
        # reset every iteration
        Valid("""
            for x, y in loader:
                running = 0
                loss = criterion(model(x), y)
                loss.backward()
                running += loss
        """),
    ]
    INVALID = [
        # the mean over the epoch, accumulated a batch at a time
        Invalid(
            """
            epoch_loss = 0
            for data, label in train_loader:
                loss = criterion(model(data), label)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                epoch_loss += loss / len(train_loader)
            print(f"loss {epoch_loss:.4f}")
            """,
            line=7,
            fixed="""
            epoch_loss = 0
            for data, label in train_loader:
                loss = criterion(model(data), label)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                epoch_loss += loss.item() / len(train_loader)
            print(f"loss {epoch_loss:.4f}")
            """,
        ),
        Invalid(
            """
            total_loss = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                total_loss += loss
            """,
            line=6,
            fixed="""
            total_loss = 0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
                total_loss += loss.item()
            """,
        ),
        Invalid(
            """
            def train(model, loader):
                losses = []
                for x, y in loader:
                    loss = criterion(model(x), y)
                    loss.backward()
                    losses.append(loss)
                return sum(losses) / len(losses)
            """,
            line=6,
            fixed="""
            def train(model, loader):
                losses = []
                for x, y in loader:
                    loss = criterion(model(x), y)
                    loss.backward()
                    losses.append(loss.item())
                return sum(losses) / len(losses)
            """,
        ),
        Invalid(
            """
            losses = []
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                losses.append(loss)
            print(torch.stack(losses).mean())
            """,
            line=5,
            fixed="""
            losses = []
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                losses.append(loss.detach())
            print(torch.stack(losses).mean())
            """,
        ),
        Invalid(
            """
            epoch_loss = 0.0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                epoch_loss = epoch_loss + loss * x.size(0)
            """,
            line=5,
            fixed="""
            epoch_loss = 0.0
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                epoch_loss = epoch_loss + loss.item() * x.size(0)
            """,
        ),
        # a meter that sums what it is given keeps every iteration's graph
        Invalid(
            """
            class AverageMeter:
                def __init__(self):
                    self.sum, self.count = 0, 0
                def update(self, val, n=1):
                    self.sum += val * n
                    self.count += n
            losses = AverageMeter()
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                losses.update(loss, x.size(0))
            """,
            line=11,
            fixed="""
            class AverageMeter:
                def __init__(self):
                    self.sum, self.count = 0, 0
                def update(self, val, n=1):
                    self.sum += val * n
                    self.count += n
            losses = AverageMeter()
            for x, y in loader:
                loss = criterion(model(x), y)
                loss.backward()
                losses.update(loss.item(), x.size(0))
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        for loop in program.loops:
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
            for stmt, acc, value in _statement_syntax(program, loop).accumulations_of(loop):
                loss_node = _loss_in(value, backwarded)
                if loss_node is None or acc in backwarded or acc.split(".")[0] == loss_node.value:
                    continue
                if isinstance(stmt, cst.Call) and stmt.func.attr.value == "update" \
                        and not _keeps_argument(program, scope, acc):
                    continue
                if _under_no_grad(program, stmt, loop):
                    continue
                if not _persistent(program, scope, loop, acc):
                    continue
                usage = _later_usage(program, scope, acc, flow, loop)
                if usage == "backward":
                    continue
                method = "detach" if usage == "tensor" else "item"
                yield self.finding(loss_node, fix=NodeFix(
                    f"Use .{method}()", (Replace(loss_node, f"{loss_node.value}.{method}()"),), SAFE if method == "detach" else UNSAFE))


_OWN_LIMITS = (*LOOP_TYPES, cst.FunctionDef, cst.Lambda)  # a node past one of these has another innermost loop


def _own_nodes(loop: cst.CSTNode):
    """The nodes of ``loop``'s body (pre-order) whose innermost loop is ``loop``: not past a nested loop,
    ``def`` or ``lambda``."""
    body = getattr(loop, "body", None)
    stack = [body] if body is not None else []
    while stack:
        node = stack.pop()
        yield node
        if isinstance(node, _OWN_LIMITS):
            continue
        children = list(iter_children(node))
        children.reverse()
        stack.extend(children)


def _accumulations(loop: cst.CSTNode):
    """(statement, accumulator, value) for `acc += v`, `acc = acc + v`, `acc.append(v)` in ``loop`` itself."""
    for node in _own_nodes(loop):
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
        elif isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and node.func.attr.value in ("append", "update") and len(node.args) in (1, 2) \
                and node.args[0].keyword is None and (len(node.args) == 1 or node.func.attr.value == "update"):
            acc = dotted_name(node.func.value)
            if acc:
                yield node, acc, node.args[0].value


_DROPS_GRAPH = re.compile(r"\.item\(|\.detach\(|\bfloat\(|is_tensor|isinstance|no_grad|\.data\b|\.tolist\(")


def _keeps_argument(program: ProgramModel, scope, acc: str) -> bool:
    """``acc.update(loss)`` keeps the tensor: ``acc`` is built once in the scope from a meter class defined in
    this module whose ``update`` adds its argument into an attribute (``self.sum += val * n``) and never
    converts it (``.item()``, ``.detach()``, ``float()``, a tensor check)."""
    nodes = _index(program, scope).assigned.get(acc, [])
    if len(nodes) != 1 or not isinstance(nodes[0], cst.Assign) or not isinstance(nodes[0].value, cst.Call):
        return False
    cls = program.classes.get(dotted_name(nodes[0].value.func) or "")
    method = next((s for s in cls.body.body if isinstance(s, cst.FunctionDef) and s.name.value == "update"), None) \
        if cls is not None else None
    if method is None or len(method.params.params) < 2:
        return False
    if _DROPS_GRAPH.search(program.code_for(method)):
        return False
    value = method.params.params[1].name.value
    return any(isinstance(n, cst.AugAssign) and isinstance(n.operator, cst.AddAssign)
               and isinstance(n.target, cst.Attribute) and value in names_in(n.value) for n in walk(method.body))


def _loss_in(value: cst.BaseExpression, backwarded: set[str]) -> cst.Name | None:
    """The backpropagated loss an accumulated value is made of: ``loss``, ``loss * n``, ``loss / len(loader)``,
    ``loss * x.size(0) / total``."""
    if isinstance(value, cst.Name) and value.value in backwarded:
        return value
    if isinstance(value, cst.BinaryOperation) and isinstance(value.operator, (cst.Multiply, cst.Divide)):
        sides = (value.left, value.right) if isinstance(value.operator, cst.Multiply) else (value.left,)
        for side in sides:
            found = _loss_in(side, backwarded)
            if found is not None:
                return found
    return None


def _under_no_grad(program: ProgramModel, stmt, loop) -> bool:
    for ancestor in program.ancestors(stmt):
        if isinstance(ancestor, cst.With) and with_no_grad(program, ancestor, False) is not False:
            return True
        if isinstance(ancestor, cst.FunctionDef):
            return decorated_no_grad(program, ancestor)
    return False


class _ScopeIndex:
    """What SAN106 asks about a scope, collected in one walk: assignments by name, the names used in
    `stack` / `cat` calls, and (targets, value names) of every assignment."""

    def __init__(self, scope: cst.CSTNode) -> None:
        self.assigned: dict[str, list[cst.CSTNode]] = {}
        self.stacked: set[str] = set()
        self.assignments: list[tuple[set[str], set[str]]] = []
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

    @classmethod
    def joined(cls, parts: list[_ScopeIndex]) -> _ScopeIndex:
        """The index of consecutive code (a module's statements) from the indexes of its parts, in order."""
        index = cls.__new__(cls)
        index.assigned, index.stacked, index.assignments = {}, set(), []
        for part in parts:
            for name, nodes in part.assigned.items():
                index.assigned.setdefault(name, []).extend(nodes)
            index.stacked |= part.stacked
            index.assignments.extend(part.assignments)
        return index


class _StatementSyntax:
    """SAN106's syntactic questions about one top-level statement: each loop's accumulations, each
    function's :class:`_ScopeIndex`. The answers read nothing outside the statement, so they are kept with
    it across a buffer's versions (:meth:`ProgramModel.for_statement`) and found on demand."""

    def __init__(self) -> None:
        self._accumulations: dict[int, list] = {}
        self._indexes: dict[int, _ScopeIndex] = {}

    def accumulations_of(self, loop: cst.CSTNode) -> list:
        """:func:`_accumulations` of ``loop``, a loop of this statement."""
        found = self._accumulations.get(id(loop))
        if found is None:
            found = self._accumulations[id(loop)] = list(_accumulations(loop))
        return found

    def index_of(self, scope: cst.CSTNode) -> _ScopeIndex:
        """The :class:`_ScopeIndex` of ``scope``, this statement or a function in it."""
        index = self._indexes.get(id(scope))
        if index is None:
            index = self._indexes[id(scope)] = _ScopeIndex(scope)
        return index


def _syntax_of(program: ProgramModel, statement: cst.CSTNode) -> _StatementSyntax:
    return _StatementSyntax()


def _statement_syntax(program: ProgramModel, node: cst.CSTNode) -> _StatementSyntax:
    """The :class:`_StatementSyntax` of the top-level statement that holds ``node``."""
    return program.for_statement(_syntax_of, program.top_statement(node), STATEMENT_ONLY)


def _index(program: ProgramModel, scope) -> _ScopeIndex:
    if scope is not program.module:
        return _statement_syntax(program, scope).index_of(scope)
    return program.cached(_module_index)


def _module_index(program: ProgramModel) -> _ScopeIndex:
    """The module's index, joined from its statements' (each kept with its statement)."""
    return _ScopeIndex.joined([program.for_statement(_syntax_of, statement, STATEMENT_ONLY).index_of(statement)
                               for statement in program.module.body])


def _backwarded_in(program: ProgramModel) -> dict[int, set[str]]:
    return {}  # id(scope) -> the names in what the scope backpropagates (per program: it reads the flow)


def _persistent(program: ProgramModel, scope, loop, acc: str) -> bool:
    """The accumulator outlives an iteration: an attribute, or a name assigned before the loop and
    not reset inside it."""
    if "." in acc:
        return True
    nodes = _index(program, scope).assigned.get(acc, [])
    if any(_inside(program, node, loop) for node in nodes):
        return False  # reset inside the loop
    return bool(nodes)


def _inside(program, node, loop) -> bool:
    return any(a is loop for a in program.ancestors(node))


def _later_usage(program: ProgramModel, scope, acc: str, flow, loop) -> str:
    """"backward" when the accumulated values are backpropagated later, "tensor" when they are
    stacked / concatenated as tensors, else "other"."""
    index = _index(program, scope)
    cache = program.cached(_backwarded_in)
    backwarded_names = cache.get(id(scope))
    if backwarded_names is None:
        backwarded_names = cache[id(scope)] = set()
        for e in flow.scope(scope).effects:
            if e.kind == BACKWARD and e.arg is not None:
                backwarded_names |= names_in(e.arg)
    head = acc.split(".")[0]
    if acc in backwarded_names or head in backwarded_names:
        return "backward"
    for targets, values in index.assignments:
        if head in values and targets & backwarded_names:
            return "backward"
    return "tensor" if head in index.stacked else "other"
