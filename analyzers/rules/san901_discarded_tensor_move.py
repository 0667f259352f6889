from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..dataflow import ForTarget
from ..model import Binding, ProgramModel
from ..name_guesses import name_tokens
from ..rule import SAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import dotted_name
from ..torch_api import DATALOADER, LOADER_WRAPPERS
from ..values import values

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
        Valid("""
            model = Net()
            model.to(device)
        """),
        Valid("""
            import torch
            x = torch.randn(3)
            x = x.to(device)
        """),
        # a tokenizer's BatchEncoding moves in place (and returns itself)
        Valid("""
            batch = tokenizer(texts, return_tensors='pt')
            batch.to(device)
        """),
        Valid("""
            for batch in loader:
                batch.to(device)
        """),
        Valid("""
            def f(x):
                x.cuda()
        """),
    ]
    INVALID = [
        Invalid(
            """
            for images, labels in train_loader:
                images.to(device)
                labels.to(device)
                out = model(images)
            """,
            line=2,
            fixed="""
            for images, labels in train_loader:
                images = images.to(device)
                labels = labels.to(device)
                out = model(images)
            """,
        ),
        Invalid(
            """
            import torch
            x = torch.zeros(4, 3)
            x.cuda()
            """,
            line=3,
            fixed="""
            import torch
            x = torch.zeros(4, 3)
            x = x.cuda()
            """,
        ),
        Invalid(
            """
            import torch
            def f(t: torch.Tensor):
                t.cpu()
                return t
            """,
            line=3,
            fixed="""
            import torch
            def f(t: torch.Tensor):
                t = t.cpu()
                return t
            """,
        ),
        Invalid(
            """
            for i, (x, y) in enumerate(loader):
                x.to(dev, non_blocking=True)
            """,
            line=2,
            fixed="""
            for i, (x, y) in enumerate(loader):
                x = x.to(dev, non_blocking=True)
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        flow = None
        for call in program.calls:
            func = call.func
            if not (type(func) is cst.Attribute and func.attr.value in _MOVES):
                continue
            if not isinstance(program.parent(call), cst.Expr):
                continue
            if not isinstance(func.value, cst.Name) or func.value.value in program.imports:
                continue
            if flow is None:
                flow = ctx.dataflow
            if not _is_tensor(program, flow, func.value):
                continue
            name = func.value.value
            yield self.finding(call, fix=NodeFix(f"Assign the result to {name}",
                                                 (Replace(call, f"{name} = {program.code_for(call)}"),), SAFE))


def _is_tensor(program: ProgramModel, flow, name: cst.Name) -> bool:
    binding = flow.reaching(name.value, name)
    if isinstance(binding, ForTarget):
        loop = binding.loop
        return _unpacked(loop.target, name.value) and _is_loader(program, flow, loop.iter)
    if isinstance(binding, Binding):
        if binding.value is not None:
            return isinstance(binding.value, cst.Call) and program.call_name(binding.value) in _TENSOR_FACTORIES
        # `x, y = batch` inside `for batch in loader`, or `x, y = next(iter(loader))`
        node = binding.node
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and _unpacked(node.targets[0].target, name.value):
            value = node.value
            if isinstance(value, cst.Call) and program.call_name(value) == "next" and value.args:
                return _is_loader(program, flow, value.args[0].value)
            if isinstance(value, cst.Name):
                inner = flow.reaching(value.value, node)
                return isinstance(inner, ForTarget) and isinstance(inner.loop.target, cst.Name) \
                    and _is_loader(program, flow, inner.loop.iter)
        return False
    function = flow.scope(name)
    if binding is None and function is not None and not any(
        flow.scope(b.node) is function for b in program.bindings.get(name.value, ())
    ):
        param = flow.params(function).get(name.value)
        if param is not None and param.annotation is not None:
            return program.qualname(param.annotation.annotation) in ("torch.Tensor", "torch.FloatTensor", "torch.LongTensor")
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


def _is_loader(program: ProgramModel, flow, expr: cst.BaseExpression, depth: int = 0) -> bool:
    if depth > 3:
        return False
    iterated = values(program).iterated(expr) if depth == 0 else None
    if iterated is not None and iterated.kind == DATALOADER:
        return True  # `enumerate(tqdm(loader))`, a loader a helper returns or `accelerator.prepare` hands back
    if isinstance(expr, cst.Call):
        qual = program.call_name(expr)
        if qual in LOADER_WRAPPERS and expr.args:
            return _is_loader(program, flow, expr.args[0].value, depth + 1)
        return qual in ("torch.utils.data.DataLoader", "torch.utils.data.dataloader.DataLoader")
    name = dotted_name(expr)
    if name is None:
        return False
    if program.kind_of(expr) == DATALOADER:
        return True
    tokens = name_tokens(name.rsplit(".", 1)[-1])
    return any(t in ("loader", "dataloader", "dl") for t in tokens)
