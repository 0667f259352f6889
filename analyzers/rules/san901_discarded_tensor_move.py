from __future__ import annotations

import libcst as cst

from ..dataflow import ForTarget, dataflow, name_tokens
from ..model import DATALOADER, Binding, ProgramModel, dotted_name

from ..rule import Invalid, NodeEdit, NodeFix, Rule, SAFE

_MOVES = frozenset({"to", "cuda", "cpu"})
_TENSOR_FACTORIES = frozenset(
    "torch." + name for name in (
        "tensor", "as_tensor", "from_numpy", "zeros", "ones", "empty", "full", "rand", "randn", "randint",
        "randperm", "arange", "linspace", "logspace", "eye", "zeros_like", "ones_like", "empty_like",
        "full_like", "rand_like", "randn_like", "randint_like", "stack", "cat", "concat", "concatenate",
        "Tensor", "FloatTensor", "LongTensor", "IntTensor", "BoolTensor", "DoubleTensor", "HalfTensor",
        "ByteTensor", "normal", "bernoulli", "multinomial", "where", "matmul", "einsum", "frombuffer",
    )
)
_LOADER_WRAPPERS = frozenset({"enumerate", "tqdm", "tqdm.tqdm", "tqdm.auto.tqdm", "iter", "zip"})


class DiscardedTensorMove(Rule):
    """`x.to(device)` / `x.cuda()` / `x.cpu()` used as a statement on a tensor: the moved copy is thrown
    away. (Modules, and containers such as Hugging Face `BatchEncoding`, move in place and are left alone:
    the rule only reports names known to hold tensors.)"""

    code = "SAN901"
    name = "discarded-tensor-move"
    message = "Tensor.to() returns a new tensor; this statement discards it and leaves the tensor where it was"
    why = """
        Unlike `nn.Module.to()`, which moves parameters in place, `Tensor.to()` / `.cuda()` / `.cpu()` return
        a copy. As a bare statement the copy is dropped: the next line still uses the CPU tensor, and the
        error ("Expected all tensors to be on the same device") or a silent CPU run follows.
    """
    example = """
        for images, labels in loader:
            images.to(device)   # SAN901
            out = model(images)
    """
    fix_doc = """
        Assign the result: `images = images.to(device)`.
    """
    known_problems = """
        Only names known to hold tensors are reported; values whose type the rule cannot tell (function
        results, attributes) are left alone, so some discarded moves are missed.
    """
    fix_safety = """
        Safe: assigning the result makes the tensor be where the code already asked it to be; a tensor's
        `.to()` never changes the original, so nothing else depended on the call.
    """
    VALID = [
        "model = Net()\nmodel.to(device)\n",
        "import torch\nx = torch.randn(3)\nx = x.to(device)\n",
        # a tokenizer's BatchEncoding moves in place (and returns itself)
        "batch = tokenizer(texts, return_tensors='pt')\nbatch.to(device)\n",
        "for batch in loader:\n    batch.to(device)\n",
        "def f(x):\n    x.cuda()\n",
    ]
    INVALID = [
        Invalid(
            "for images, labels in train_loader:\n    images.to(device)\n    labels.to(device)\n    out = model(images)\n",
            line=2,
            fixed="for images, labels in train_loader:\n    images = images.to(device)\n    labels = labels.to(device)\n    out = model(images)\n",
        ),
        Invalid(
            "import torch\nx = torch.zeros(4, 3)\nx.cuda()\n",
            line=3,
            fixed="import torch\nx = torch.zeros(4, 3)\nx = x.cuda()\n",
        ),
        Invalid(
            "import torch\ndef f(t: torch.Tensor):\n    t.cpu()\n    return t\n",
            line=3,
            fixed="import torch\ndef f(t: torch.Tensor):\n    t = t.cpu()\n    return t\n",
        ),
        Invalid(
            "for i, (x, y) in enumerate(loader):\n    x.to(dev, non_blocking=True)\n",
            line=2,
            fixed="for i, (x, y) in enumerate(loader):\n    x = x.to(dev, non_blocking=True)\n",
        ),
    ]

    def check(self, model: ProgramModel):
        flow = None
        for call in model.calls:
            func = call.func
            if not (type(func) is cst.Attribute and func.attr.value in _MOVES):
                continue
            if not isinstance(model.parent(call), cst.Expr):
                continue
            if not isinstance(func.value, cst.Name) or func.value.value in model.imports:
                continue
            if flow is None:
                flow = dataflow(model)
            if not _is_tensor(model, flow, func.value):
                continue
            name = func.value.value
            yield self.finding(call, fix=NodeFix(f"Assign the result to {name}",
                                                 (NodeEdit("replace", call, f"{name} = {model.code_for(call)}"),), SAFE))


def _is_tensor(model: ProgramModel, flow, name: cst.Name) -> bool:
    binding = flow.reaching(name.value, name)
    if isinstance(binding, ForTarget):
        loop = binding.loop
        return _unpacked(loop.target, name.value) and _is_loader(model, flow, loop.iter)
    if isinstance(binding, Binding):
        if binding.value is not None:
            return isinstance(binding.value, cst.Call) and model.call_name(binding.value) in _TENSOR_FACTORIES
        # `x, y = batch` inside `for batch in loader`, or `x, y = next(iter(loader))`
        node = binding.node
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and _unpacked(node.targets[0].target, name.value):
            value = node.value
            if isinstance(value, cst.Call) and model.call_name(value) == "next" and value.args:
                return _is_loader(model, flow, value.args[0].value)
            if isinstance(value, cst.Name):
                inner = flow.reaching(value.value, node)
                return isinstance(inner, ForTarget) and isinstance(inner.loop.target, cst.Name) \
                    and _is_loader(model, flow, inner.loop.iter)
        return False
    function = flow.scope(name)
    if binding is None and function is not None and not any(
        flow.scope(b.node) is function for b in model.bindings.get(name.value, ())
    ):
        param = flow.params(function).get(name.value)
        if param is not None and param.annotation is not None:
            return model.qualname(param.annotation.annotation) in ("torch.Tensor", "torch.FloatTensor", "torch.LongTensor")
    return False


def _unpacked(target: cst.BaseExpression, name: str) -> bool:
    """``name`` is an element of the tuple target (possibly nested), not the whole target."""
    if not isinstance(target, (cst.Tuple, cst.List)):
        return False
    for element in target.elements:
        value = element.value
        if isinstance(value, cst.Name) and value.value == name and not isinstance(element, cst.StarredElement):
            return True
        if _unpacked(value, name):
            return True
    return False


def _is_loader(model: ProgramModel, flow, expr: cst.BaseExpression, depth: int = 0) -> bool:
    if depth > 3:
        return False
    if isinstance(expr, cst.Call):
        qual = model.call_name(expr)
        if qual in _LOADER_WRAPPERS and expr.args:
            return _is_loader(model, flow, expr.args[0].value, depth + 1)
        return qual in ("torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader")
    name = dotted_name(expr)
    if name is None:
        return False
    if model.kind_of(expr) == DATALOADER:
        return True
    tokens = name_tokens(name.rsplit(".", 1)[-1])
    return any(t in ("loader", "dataloader", "dl") for t in tokens)
