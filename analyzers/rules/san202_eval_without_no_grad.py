from __future__ import annotations

import libcst as cst

from ..flow import (
    FORWARD,
    call_sites,
    decorated_no_grad,
    eval_candidates,
    flow_of,
    indent_of,
    loop_header,
    named_calls,
    referenced_otherwise,
    _with_no_grad,
)
from ..model import ProgramModel, walk
from ..rule import Invalid, NodeEdit, NodeFix, Rule, UNSAFE


class EvalWithoutNoGrad(Rule):
    """Evaluation forward passes (in a function named like `evaluate` / `validate` / `test` /
    `predict`, or in a loop over a validation / test loader) outside `torch.no_grad()`,
    `torch.inference_mode()` or `torch.set_grad_enabled(False)` — as a `with` block, a decorator, or
    around the call site."""

    code = "SAN202"
    name = "eval-without-no-grad"
    message = "evaluation runs with autograd on: wrap it in torch.no_grad() (or inference_mode())"
    why = """
        With autograd enabled every evaluation forward pass records its graph and keeps the activations
        alive for a backward that never comes: memory use roughly doubles or triples, evaluation is slower,
        and values accumulated from the outputs keep whole graphs alive.
    """
    example = """
        model.eval()
        for x, y in val_loader:
            correct += (model(x).argmax(1) == y).sum().item()
    """
    fix_doc = """
        Run evaluation under `with torch.no_grad():` (or `torch.inference_mode()`), or decorate the
        evaluation function with `@torch.no_grad()`. The quick fix does one of the two.
    """
    known_problems = """
        Like SAN201, evaluation is recognised by names; evaluation outputs that are used for a later
        `backward()` (adversarial evaluation, gradient-based metrics) look the same to the rule.
    """
    fix_safety = """
        Unsafe: under `torch.no_grad()` the outputs carry no graph, so code that later differentiates through
        them (directly, or through a value the loop stores) stops receiving gradients; decorating a function
        changes it for every caller.
    """
    VALID = [
        "import torch\n\n@torch.no_grad()\ndef evaluate(model, loader):\n    model.eval()\n    for x, y in loader:\n        out = model(x)\n",
        "import torch\n\n@torch.inference_mode()\ndef evaluate(model, loader):\n    model.eval()\n    for x, y in loader:\n        out = model(x)\n",
        "import torch\n\ndef evaluate(model, loader):\n    model.eval()\n    with torch.set_grad_enabled(False):\n        for x, y in loader:\n            out = model(x)\n",
        "import torch\n\ndef validate(model, loader):\n    model.eval()\n    with torch.inference_mode():\n        for x, y in loader:\n            out = model(x)\n",
        # the caller disables gradients
        "import torch\n\ndef evaluate(model, loader):\n    model.eval()\n    for x, y in loader:\n        out = model(x)\n\nwith torch.no_grad():\n    evaluate(model, val_loader)\n",
        # never called here: the callers decide
        "import torch\n\ndef evaluate(model, loader):\n    model.eval()\n    for x, y in loader:\n        out = model(x)\n",
        # the flag form, decided by the caller
        "import torch\n\ndef run(model, loader, train):\n    model.train(train)\n    with torch.set_grad_enabled(train):\n        for x, y in loader:\n            out = model(x)\n",
        # gradients needed on purpose (saliency)
        "def predict(model, x):\n    x.requires_grad_(True)\n    out = model(x)\n    return out\n",
    ]
    INVALID = [
        Invalid(
            "import torch\n\ndef evaluate(model, loader):\n    model.eval()\n    correct = 0\n    for x, y in loader:\n"
            "        correct += (model(x).argmax(1) == y).sum().item()\n    return correct\n\nprint(evaluate(net, val_loader))\n",
            line=3,
            fixed="import torch\n\n@torch.no_grad()\ndef evaluate(model, loader):\n    model.eval()\n    correct = 0\n    for x, y in loader:\n"
            "        correct += (model(x).argmax(1) == y).sum().item()\n    return correct\n\nprint(evaluate(net, val_loader))\n",
        ),
        Invalid(
            "import torch\n\nfor epoch in range(3):\n    model.eval()\n    for x, y in val_loader:\n        out = model(x)\n"
            "        acc += (out.argmax(1) == y).float().mean().item()\n",
            line=5,
            fixed="import torch\n\nfor epoch in range(3):\n    model.eval()\n    with torch.no_grad():\n        for x, y in val_loader:\n            out = model(x)\n"
            "            acc += (out.argmax(1) == y).float().mean().item()\n",
        ),
    ]

    def check(self, model: ProgramModel):
        flow = flow_of(model)
        if _grad_disabled_globally(model):
            return
        volatile = None
        for region in eval_candidates(model):
            forwards = [e for e in region.effects if e.kind == FORWARD]
            if any(e.nograd is not False for e in forwards):
                continue  # some forward is under no_grad (or a flag): the author thought about it
            if not region.holds():
                continue
            if volatile is None:
                volatile = _volatile_variables(model)
            scope = region.function.node if region.function is not None else region.node
            if any(any(a is scope for a in model.ancestors(call)) for call in volatile):
                continue  # pre-0.4 code: Variable(x, volatile=True) is how autograd was turned off
            if region.function is not None:
                info = region.function
                if decorated_no_grad(model, info.node):
                    continue
                sites = call_sites(model, info)
                if not sites or referenced_otherwise(model, info, sites) or any(_site_no_grad(model, flow, s) for s in sites):
                    continue  # uncalled here: callers elsewhere may disable gradients
                yield self.finding(info.node.name, fix=_decorate(model, info.node))
            else:
                loop = region.node
                func = model.enclosing_function(loop)
                if func is not None:
                    info = flow._info(func)
                    if decorated_no_grad(model, func):
                        continue
                    if info is not None:
                        sites = call_sites(model, info)
                        if referenced_otherwise(model, info, sites) or any(_site_no_grad(model, flow, s) for s in sites):
                            continue
                start, end = loop_header(loop)
                yield self.finding(start, end_node=end, fix=_wrap(model, loop))


def _volatile_variables(model: ProgramModel) -> list[cst.Call]:
    """``Variable(x, volatile=True)`` calls (PyTorch < 0.4 disabled autograd that way)."""
    return [call for call, qual in named_calls(model)
            if qual is not None and qual.rsplit(".", 1)[-1] == "Variable"
            and any(a.keyword is not None and a.keyword.value == "volatile"
                    and isinstance(a.value, cst.Name) and a.value.value == "True" for a in call.args)]


def _grad_disabled_globally(model: ProgramModel) -> bool:
    for call, qual in named_calls(model):
        if qual in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled"):
            parent = model.parent(call)
            if not isinstance(parent, cst.WithItem):
                return True
    return False


def _site_no_grad(model: ProgramModel, flow, site, _depth: int = 0) -> bool:
    if _depth > 4:
        return False
    for ancestor in model.ancestors(site):
        if isinstance(ancestor, cst.With) and _with_no_grad(model, ancestor, False) is not False:
            return True
        if isinstance(ancestor, cst.FunctionDef):
            if decorated_no_grad(model, ancestor):
                return True
            info = flow._info(ancestor)
            if info is not None:
                outer = call_sites(model, info)
                return bool(outer) and all(_site_no_grad(model, flow, s, _depth + 1) for s in outer)
            return False
    return False


def _torch_name(model: ProgramModel) -> str | None:
    return "torch" if model.imports.get("torch") == "torch" else None


def _decorate(model: ProgramModel, func: cst.FunctionDef) -> NodeFix | None:
    torch = _torch_name(model)
    if torch is None or func.asynchronous is not None:
        return None
    for node in walk(func.body):
        if isinstance(node, (cst.Yield, cst.Await)):
            return None
    return NodeFix("Decorate with @torch.no_grad()", (NodeEdit("insert_before", func, f"@{torch}.no_grad()"),), UNSAFE)


def _wrap(model: ProgramModel, loop: cst.CSTNode) -> NodeFix | None:
    torch = _torch_name(model)
    if torch is None:
        return None
    indent = indent_of(model, loop)
    unit = model.module.default_indent
    code = cst.Module(body=[], default_indent=unit, default_newline=model.module.default_newline).code_for_node(
        loop.with_changes(leading_lines=()))
    lines = [line.rstrip("\r") for line in code.rstrip("\r\n").split("\n")]  # line breaks: the engine's
    if any("\"\"\"" in line or "'''" in line for line in lines):
        return None  # multi-line strings must not be re-indented
    body = "\n".join((indent + unit + line) if line.strip() else "" for line in lines)
    return NodeFix("Wrap in with torch.no_grad()", (NodeEdit("replace", loop, f"{torch}.no_grad()".join(["with ", ":\n"]) + body),), UNSAFE)
