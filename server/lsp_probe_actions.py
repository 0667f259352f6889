"""Code actions on probe diagnostics, where the report makes the fix clear and the edit target is found
unambiguously in the current text (else nothing is offered):

- lr-range warns → "Set lr to the suggested value": replaces the numeric literal of the one ``lr=`` keyword in
  the call on the diagnostic's line (the optimizer's construction);
- initial-loss warns that the output bias should start at the log class priors, the log-odds of the positive
  rate or the target mean → "Initialise the output bias …": a line after the one definition of the layer the
  probe found making the output — ``self.<layer> = …Linear(…)`` in an ``__init__``, or item ``<layer>`` of the
  one ``NAME = …Sequential(…)`` whose item is such a ``Linear`` — when the ``Linear``'s literal width agrees.
"""

from __future__ import annotations

import ast
import math

from lsprotocol import types

from .lsp_actions import wants, workspace_edit
from .lsp_positions import LineIndex, overlaps, units

MAX_PRIORS = 100  # classes beyond which a literal list of priors is no edit to offer


# ---- what the report says (stored in the diagnostic's data when it is made) ---------------------------------

def action_data(check: dict, report: dict) -> dict:
    """The facts a code action needs, from the check entry and the report (empty when no action applies)."""
    status, measured = check.get("status"), check.get("measured")
    if status not in ("warn", "fail") or not isinstance(measured, dict):
        return {}
    if check.get("id") == "lr-range":
        lr = measured.get("suggested")
        return {"suggestedLr": float(lr)} if isinstance(lr, (int, float)) and lr > 0 else {}
    if check.get("id") != "initial-loss" or "bias" not in str(check.get("message")):
        return {}
    output = (report.get("summary") or {}).get("output_layer") or {}
    layer, width = output.get("name"), output.get("out_features")
    if not isinstance(layer, str) or not (layer.isidentifier() or layer.isdigit()) or not isinstance(width, int):
        return {}
    bias: dict = {"layer": layer, "width": width}
    if "target_mean" in measured and isinstance(measured["target_mean"], (int, float)):
        return {"bias": {**bias, "value": float(measured["target_mean"]), "why": "the target mean"}}
    p = measured.get("positive_rate")
    if isinstance(p, (int, float)) and 0 < p < 1:
        return {"bias": {**bias, "value": math.log(p / (1 - p)), "why": "the log-odds of the positive rate"}}
    if "target_entropy" in measured:
        counts = _label_counts(report)
        classes = (report.get("loss") or {}).get("classes")
        if counts and len(counts) == classes and classes <= MAX_PRIORS:
            n = sum(counts)
            priors = [(c + 1) / (n + classes) for c in counts]  # add-one smoothed: no log(0)
            return {"bias": {**bias, "priors": priors, "why": "the log class priors"}}
    return {}


def _label_counts(report: dict) -> list[int] | None:
    for check in report.get("checks") or []:
        if check.get("id") == "data-stats":
            hist = (check.get("series") or {}).get("label_histogram")
            if isinstance(hist, list) and hist and all(isinstance(c, (int, float)) for c in hist):
                return [int(c) for c in hist]
    return None


# ---- the actions --------------------------------------------------------------------------------------------

def code_actions(uri: str, text: str | None, rng: types.Range, diagnostics: list[types.Diagnostic],
                 version: int | None, document_changes: bool, encoding: str,
                 only: list[str] | None) -> list[types.CodeAction]:
    """The probe's code actions for the diagnostics of ``uri`` on the lines of ``rng`` (or overlapping it)."""
    if text is None or not wants(only, types.CodeActionKind.QuickFix):
        return []
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    index = LineIndex(text, encoding)
    out = []
    for diag in diagnostics:
        data = diag.data if isinstance(diag.data, dict) else {}
        if not data or not rng.start.line <= diag.range.start.line <= rng.end.line and not overlaps(diag.range, rng):
            continue
        title = edit = None
        if "suggestedLr" in data:
            edit = _lr_edit(tree, index, diag.range.start.line, data["suggestedLr"])
            title = f"Set lr to the suggested value {_number(data['suggestedLr'])} (lr-range)"
        elif isinstance(data.get("bias"), dict):
            edit = _bias_edit(tree, index, text, data["bias"])
            title = f"Initialise the output bias to {data['bias']['why']} (initial-loss)"
        if edit is not None:
            out.append(types.CodeAction(title=title, kind=types.CodeActionKind.QuickFix, diagnostics=[diag],
                                        edit=workspace_edit({uri: [edit]}, {uri: version}, document_changes)))
    return out


def _number(value: float) -> str:
    return f"{value:.2g}" if value < 1 else f"{value:.3g}"


def _position(index: LineIndex, line: int, col_bytes: int) -> types.Position:
    """An ``ast`` position (1-based line, UTF-8 byte column) as an LSP position."""
    text = index.line_text(line - 1)
    chars = text.encode("utf-8")[:col_bytes].decode("utf-8", errors="ignore")
    return types.Position(line=line - 1, character=units(chars, index.encoding))


def _lr_edit(tree: ast.AST, index: LineIndex, line0: int, lr: float) -> types.TextEdit | None:
    """The numeric literal of the one ``lr=`` keyword in the calls that span line ``line0`` (0-based)."""
    literals = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.lineno - 1 <= line0 <= (node.end_lineno or node.lineno) - 1:
            for kw in node.keywords:
                value = kw.value
                if kw.arg == "lr" and isinstance(value, ast.Constant) and type(value.value) in (int, float):
                    literals.append(value)
    if len(literals) != 1 or literals[0].end_lineno is None or literals[0].end_col_offset is None:
        return None
    lit = literals[0]
    return types.TextEdit(range=types.Range(start=_position(index, lit.lineno, lit.col_offset),
                                            end=_position(index, lit.end_lineno, lit.end_col_offset)),
                          new_text=_number(lr))


def _bias_edit(tree: ast.Module, index: LineIndex, text: str, bias: dict) -> types.TextEdit | None:
    """A line after the one definition of the output layer that sets its bias (see the module's docstring)."""
    found = _layer_definitions(tree, str(bias.get("layer")), bias.get("width"))
    torch_name, nn_name = _torch_names(tree)
    if len(found) != 1 or torch_name is None and nn_name is None:
        return None
    stmt, target = found[0]
    line = index.line_text(stmt.lineno - 1)
    indent = line[: len(line) - len(line.lstrip())]
    newline = "\r\n" if "\r\n" in text else "\n"
    nn = nn_name or f"{torch_name}.nn"
    if "priors" in bias:
        if torch_name is None:
            return None
        values = ", ".join(f"{p:.4g}" for p in bias["priors"])
        code = (f"{indent}with {torch_name}.no_grad():  # {bias['why']} of the probed batch (add-one smoothed)"
                f"{newline}{indent}    {target}.bias.copy_({torch_name}.tensor([{values}]).log())")
    else:
        code = f"{indent}{nn}.init.constant_({target}.bias, {bias['value']:.4g})  # {bias['why']}"
    end_line = stmt.end_lineno or stmt.lineno  # insert at the start of the line after the statement
    if end_line >= len(index.lines):
        last = index.line_text(end_line - 1)  # the statement ends the file: start a new line after it
        at = types.Position(line=end_line - 1, character=units(last, index.encoding))
        return types.TextEdit(range=types.Range(start=at, end=at), new_text=newline + code)
    at = types.Position(line=end_line, character=0)
    return types.TextEdit(range=types.Range(start=at, end=at), new_text=code + newline)


def _layer_definitions(tree: ast.Module, layer: str, width: object) -> list[tuple[ast.stmt, str]]:
    """(statement, expression of the layer) for each place that defines ``layer`` as a ``Linear`` of ``width``."""
    def linear(call: ast.expr) -> bool:
        if not isinstance(call, ast.Call) or not _name(call.func).endswith("Linear"):
            return False
        out = call.args[1] if len(call.args) > 1 else next(
            (k.value for k in call.keywords if k.arg == "out_features"), None)
        return not isinstance(out, ast.Constant) or out.value == width  # a literal width must agree

    found: list[tuple[ast.stmt, str]] = []
    for stmt in ast.walk(tree):
        if not isinstance(stmt, (ast.Assign, ast.AnnAssign)) or stmt.value is None:
            continue
        target = stmt.targets[0] if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 else (
            stmt.target if isinstance(stmt, ast.AnnAssign) else None)
        if layer.isidentifier() and isinstance(target, ast.Attribute) and target.attr == layer and \
                isinstance(target.value, ast.Name) and target.value.id == "self" and linear(stmt.value):
            found.append((stmt, f"self.{layer}"))
        elif layer.isdigit() and isinstance(target, ast.Name) and isinstance(stmt.value, ast.Call) and \
                _name(stmt.value.func).endswith("Sequential") and not stmt.value.keywords:
            items = stmt.value.args
            if int(layer) < len(items) and not any(isinstance(a, ast.Starred) for a in items) and \
                    linear(items[int(layer)]):
                found.append((stmt, f"{target.id}[{int(layer)}]"))
    return found


def _name(func: ast.expr) -> str:
    if isinstance(func, ast.Attribute):
        return f"{_name(func.value)}.{func.attr}"
    return func.id if isinstance(func, ast.Name) else ""


def _torch_names(tree: ast.Module) -> tuple[str | None, str | None]:
    """The names the module binds to ``torch`` and to ``torch.nn`` at the top level."""
    torch_name = nn_name = None
    for node in tree.body:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == "torch":
                    torch_name = alias.asname or "torch"
                elif alias.name == "torch.nn" and alias.asname:
                    nn_name = alias.asname
                elif alias.name.startswith("torch.") and not alias.asname:
                    torch_name = torch_name or "torch"
        elif isinstance(node, ast.ImportFrom) and node.module == "torch" and node.level == 0:
            for alias in node.names:
                if alias.name == "nn":
                    nn_name = alias.asname or "nn"
    return torch_name, nn_name
