"""Where in the script a watch verdict belongs: the optimizer's ``lr=`` for the verdicts a learning rate causes or
cures, the loss for the loss's own troubles, the layer a verdict names, the DataLoader for an input-bound run.
A plain ``ast`` reading of the script: when the place cannot be told for sure (two optimizers of the watched
type, a layer built in a loop), the verdict gets no line."""

from __future__ import annotations

import ast
from dataclasses import dataclass

# what each verdict is about; a verdict id not listed is not placed on a line
LR_VERDICTS = ("divergence", "plateau", "noisy-loss", "update-ratio", "exploding-gradients")
SCHEDULE_VERDICTS = ("lr-schedule",)
LOSS_VERDICTS = ("non-finite", "overfitting")
LAYER_VERDICTS = ("vanishing-gradients", "dead-units", "non-finite", "update-ratio", "saturated")
DATA_VERDICTS = ("input-bound",)
DDP_VERDICTS = ("ddp", "desync", "rank")


@dataclass(frozen=True)
class Place:
    """A 1-based line and the 0-based character columns (code points) of the part to underline."""

    line: int
    start: int
    end: int
    what: str  # "lr" | "optimizer" | "scheduler" | "loss" | "layer" | "loader" | "ddp"


def _matches(vid: str, prefixes: tuple[str, ...]) -> bool:
    return any(vid == p or vid.startswith(p + "-") or vid.endswith("-" + p) for p in prefixes)


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return ""


def _columns(lines: list[str], node: ast.AST) -> tuple[int, int, int]:
    """The node's line and columns in code points (ast counts UTF-8 bytes); a node over several lines is
    underlined to the end of its first line."""
    text = lines[node.lineno - 1]
    raw = text.encode("utf-8")
    start = len(raw[:node.col_offset].decode("utf-8", errors="replace"))
    if getattr(node, "end_lineno", node.lineno) == node.lineno and node.end_col_offset is not None:
        end = len(raw[:node.end_col_offset].decode("utf-8", errors="replace"))
    else:
        end = len(text.rstrip())
    return node.lineno, start, end


class ScriptIndex:
    """The calls and assignments of one script that verdicts can be placed on."""

    def __init__(self, source: str):
        self.lines = source.splitlines()
        self.tree = ast.parse(source)
        self.calls = [n for n in ast.walk(self.tree) if isinstance(n, ast.Call)]

    def _one(self, nodes: list) -> ast.AST | None:
        return nodes[0] if len(nodes) == 1 else None

    def _place(self, node: ast.AST | None, what: str) -> Place | None:
        if node is None:
            return None
        return Place(*_columns(self.lines, node), what)

    def optimizer(self, name: str | None, lr: bool = True) -> Place | None:
        """The watched optimizer's construction (``name``: its class), at its ``lr=`` when it has one."""
        if not name:
            return None
        call = self._one([c for c in self.calls if _callee(c) == name])
        if call is None:
            return None
        keyword = next((k for k in call.keywords if k.arg == "lr"), None) if lr else None
        if keyword is not None:
            return self._place(keyword, "lr")
        return self._place(call, "optimizer")

    def scheduler(self) -> Place | None:
        return self._place(self._one([c for c in self.calls if isinstance(c.func, ast.Attribute) and isinstance(
            c.func.value, (ast.Attribute, ast.Name)) and _dotted(c.func.value).endswith("lr_scheduler")]),
            "scheduler")

    def loss(self) -> Place | None:
        """The statement that computes the loss ``backward()`` is called on (``loss = criterion(...)``), else the
        ``backward()`` call."""
        backwards = [c for c in self.calls if isinstance(c.func, ast.Attribute) and c.func.attr == "backward"]
        call = self._one(backwards)
        if call is None:
            return None
        target = call.func.value
        if isinstance(target, ast.Name):
            assigned = [n for n in ast.walk(self.tree) if isinstance(n, ast.Assign) and n.lineno < call.lineno
                        and any(isinstance(t, ast.Name) and t.id == target.id for t in n.targets)
                        and isinstance(n.value, ast.Call)]
            if assigned:
                return self._place(max(assigned, key=lambda n: n.lineno).value, "loss")
        return self._place(call, "loss")

    def layer(self, parameter: str) -> Place | None:
        """The construction of the module a parameter (``encoder.fc1.weight``, ``0.weight``) belongs to."""
        parts = parameter.split(".")[:-1]  # drop weight / bias
        if not parts:
            return None
        names = [p for p in parts if not p.isdigit()]
        if parts[-1].isdigit():  # an item of a Sequential: its argument there
            owner = names[-1] if names else None
            sequentials = [c for c in self.calls if _callee(c) == "Sequential" and (
                owner is None or self._assigned_to(c) == owner)]
            call = self._one(sequentials)
            index = int(parts[-1])
            if call is not None and not call.keywords and index < len(call.args):
                return self._place(call.args[index], "layer")
            return None
        name = names[-1]
        assigned = [n for n in ast.walk(self.tree) if isinstance(n, ast.Assign) and isinstance(n.value, ast.Call)
                    and any(_target_name(t) == name for t in n.targets)]
        node = self._one(assigned)
        return self._place(node.value if node is not None else None, "layer")

    def _assigned_to(self, call: ast.Call) -> str | None:
        for node in ast.walk(self.tree):
            if isinstance(node, ast.Assign) and node.value is call:
                return next((_target_name(t) for t in node.targets if _target_name(t)), None)
        return None

    def loader(self) -> Place | None:
        return self._place(self._one([c for c in self.calls if _callee(c) == "DataLoader"]), "loader")

    def ddp(self) -> Place | None:
        return self._place(self._one([c for c in self.calls if _callee(c) in (
            "DistributedDataParallel", "DDP")]), "ddp")


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _target_name(target: ast.AST) -> str | None:
    if isinstance(target, ast.Name):
        return target.id
    if isinstance(target, ast.Attribute):  # self.fc1 = ...
        return target.attr
    return None


def locate(index: ScriptIndex, verdict: dict, optimizer: str | None) -> Place | None:
    """The place of one verdict in the script, or None."""
    vid = str(verdict.get("id") or "")
    layer = verdict.get("module") or verdict.get("layer")
    if _matches(vid, LAYER_VERDICTS) and isinstance(layer, str):
        place = index.layer(layer if verdict.get("layer") else layer + ".weight")
        if place is not None:
            return place
    if _matches(vid, SCHEDULE_VERDICTS):
        return index.scheduler() or index.optimizer(optimizer, lr=True)
    if _matches(vid, LR_VERDICTS):
        return index.optimizer(optimizer)
    if _matches(vid, LOSS_VERDICTS):
        return index.loss()
    if _matches(vid, DATA_VERDICTS):
        return index.loader()
    if _matches(vid, DDP_VERDICTS):
        return index.ddp()
    return None
