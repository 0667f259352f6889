from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..effect_sites import decorated_no_grad, with_no_grad
from ..flow import FORWARD
from ..lookups import call_sites, named_calls, referenced_otherwise
from ..model import ProgramModel
from ..project_index import callers_disable_grad
from ..rule import UNSAFE, InsertBefore, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import indent_of, int_literal, loop_header, nodes_of_types, walk
from ._eval_regions import eval_candidates
from ._inference import inference_helpers, pretrained_feature_methods, script_inference_helpers


class EvalWithoutNoGrad(Rule):
    """Evaluation forward passes (in a function named like `evaluate` / `validate` / `test` /
    `predict`, in a function that calls `model.eval()` itself and then only runs that model, in a function of an
    inference script — one that trains nothing — running the model its top level put in eval mode, in a method a
    configuration framework calls as inference — labml's `sample()` —, in a method of a plain class that runs a
    Hugging Face model it loads itself, in a module that trains nothing — a frozen feature extractor —, or in a
    loop over a validation / test loader) outside `torch.no_grad()`,
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
        Like SAN201, evaluation is recognised by names, and also by what a function does (it calls
        `model.eval()` itself, then runs that model with no backward or optimizer step); evaluation outputs
        that are used for a later `backward()` (adversarial evaluation, gradient-based metrics) outside the
        function look the same to the rule. Pre-0.4 code
        that turns autograd off with `Variable(..., volatile=True)`, or that batches with torchtext's legacy
        iterators (whose evaluation batches were volatile) and reads losses with `.data[0]`, is left alone.
        Hugging Face's `model.generate(...)` disables gradients itself, so a region whose only forward passes
        are `generate` calls is not reported (SAN201 still asks for `eval()` there). A framework's `sample()` is
        judged with the project (the framework calls it with gradients on); a lone file is not told. A frozen
        feature extractor is recognised only when its class has no base class, loads the model itself with
        `from_pretrained`, and its module trains nothing and never hands that model's parameters on
        (`parameters()`, `train()`); its `__call__`, whose callers are instances the project index does not
        follow, is reported only when no module that names the class (or imports one that does) ever disables
        gradients or trains anything.
    """
    fix_safety = """
        Unsafe: under `torch.no_grad()` the outputs carry no graph, so code that later differentiates through
        them (directly, or through a value the loop stores) stops receiving gradients; decorating a function
        changes it for every caller.
    """
    VALID = [
        Valid("""
            import torch

            @torch.no_grad()
            def evaluate(model, loader):
                model.eval()
                for x, y in loader:
                    out = model(x)
        """),
        Valid("""
            import torch

            @torch.inference_mode()
            def evaluate(model, loader):
                model.eval()
                for x, y in loader:
                    out = model(x)
        """),
        Valid("""
            import torch

            def evaluate(model, loader):
                model.eval()
                with torch.set_grad_enabled(False):
                    for x, y in loader:
                        out = model(x)
        """),
        Valid("""
            import torch

            def validate(model, loader):
                model.eval()
                with torch.inference_mode():
                    for x, y in loader:
                        out = model(x)
        """),
        # the caller disables gradients
        Valid("""
            import torch

            def evaluate(model, loader):
                model.eval()
                for x, y in loader:
                    out = model(x)

            with torch.no_grad():
                evaluate(model, val_loader)
        """),
        # never called here: the callers decide
        Valid("""
            import torch

            def evaluate(model, loader):
                model.eval()
                for x, y in loader:
                    out = model(x)
        """),
        # the flag form, decided by the caller
        Valid("""
            import torch

            def run(model, loader, train):
                model.train(train)
                with torch.set_grad_enabled(train):
                    for x, y in loader:
                        out = model(x)
        """),
        # gradients needed on purpose (saliency)
        Valid("""
            def predict(model, x):
                x.requires_grad_(True)
                out = model(x)
                return out
        """),
        # an inference helper (it calls eval() itself) run under no_grad by its caller
        Valid("""
            import torch

            def translate(model, tokens):
                model.eval()
                logits = model(tokens)
                return logits.argmax(-1)

            with torch.no_grad():
                print(translate(model, batch))
        """),
        # a test: pytest calls it
        Valid("""
            def test_logits_shape():
                model.eval()
                out = model(torch.zeros(2, 3, 32, 32))
                assert out.shape == (2, 10)
        """),
        # eval() then a backward: an adversarial attack, not inference
        Valid("""
            def attack(model, x, y):
                model.eval()
                x.requires_grad_(True)
                loss = loss_fn(model(x), y)
                loss.backward()
                return x + 0.01 * x.grad.sign()

            adversarial = attack(model, images, labels)
        """),
        # pre-0.4 torchtext: the test iterator of BucketIterator.splits yields volatile batches
        Valid("""
            from torchtext import data
            train_iter, test_iter = data.BucketIterator.splits((train, test), batch_size=32)
            model.eval()
            total = 0
            for batch in test_iter:
                loss = criterion(model(batch.text), batch.label)
                total += loss.data[0]
        """),
        # the pretrained encoder's parameters are handed on (to a trainer elsewhere): not a frozen feature extractor
        Valid("""
            from transformers import AutoModel

            class Embedder:
                def __init__(self, name):
                    self.model = AutoModel.from_pretrained(name)

                def embed(self, batch):
                    return self.model(**batch).last_hidden_state.mean(1)

                def trainable_parameters(self):
                    return self.model.parameters()

            vectors = Embedder("bert-base-uncased").embed(batch)
        """),
        # the script computes gradients of its outputs (a saliency map): not an inference script
        Valid("""
            import torch

            model = torch.load("checkpoint.pt")["model"]
            model.eval()

            def saliency(image, label):
                image.requires_grad_(True)
                score = model(image.unsqueeze(0))[0, label]
                score.backward()
                return image.grad.abs().amax(0)
        """),
    ]
    INVALID = [
        # a frozen feature extractor: a plain class runs the pretrained encoder it loads, nothing trains it
        Invalid(
            """
            from transformers import AutoModel

            class Embedder:
                def __init__(self, name):
                    self.model = AutoModel.from_pretrained(name)

                def embed(self, batch):
                    return self.model(**batch).last_hidden_state.mean(1)

            vectors = Embedder("bert-base-uncased").embed(batch)
            """,
            line=7,
        ),
        # an inference script: the model is put in eval mode at the top, the helper runs it
        Invalid(
            """
            import torch

            model = torch.load("checkpoint.pt")["model"]
            model.eval()

            def detect(image, min_score=0.2):
                locs, scores = model(image.unsqueeze(0))
                return model.detect_objects(locs, scores, min_score=min_score)

            if __name__ == "__main__":
                print(detect(load_image("street.jpg")))
            """,
            line=6,
        ),
        Invalid(
            """
            import torch

            def evaluate(model, loader):
                model.eval()
                correct = 0
                for x, y in loader:
                    correct += (model(x).argmax(1) == y).sum().item()
                return correct

            print(evaluate(net, val_loader))
            """,
            line=3,
            fixed="""
            import torch

            @torch.no_grad()
            def evaluate(model, loader):
                model.eval()
                correct = 0
                for x, y in loader:
                    correct += (model(x).argmax(1) == y).sum().item()
                return correct

            print(evaluate(net, val_loader))
            """,
        ),
        Invalid(
            """
            import torch

            for epoch in range(3):
                model.eval()
                for x, y in val_loader:
                    out = model(x)
                    acc += (out.argmax(1) == y).float().mean().item()
            """,
            line=5,
            fixed="""
            import torch

            for epoch in range(3):
                model.eval()
                with torch.no_grad():
                    for x, y in val_loader:
                        out = model(x)
                        acc += (out.argmax(1) == y).float().mean().item()
            """,
        ),
        # an inference helper by what it does: eval() itself, one forward, the argmax
        Invalid(
            """
            import torch

            def translate_sentence(model, tokens):
                model.eval()
                src = torch.LongTensor(tokens).unsqueeze(1)
                logits = model(src)
                return logits.argmax(-1).tolist()

            print(translate_sentence(model, [2, 14, 7, 3]))
            """,
            line=3,
            fixed="""
            import torch

            @torch.no_grad()
            def translate_sentence(model, tokens):
                model.eval()
                src = torch.LongTensor(tokens).unsqueeze(1)
                logits = model(src)
                return logits.argmax(-1).tolist()

            print(translate_sentence(model, [2, 14, 7, 3]))
            """,
        ),
    ]

    def check(self, ctx: RuleContext):
        program, flow = ctx.program, ctx.flow
        if _grad_disabled_globally(program) or _legacy_torchtext_batches(program):
            return
        volatile = None
        regions = eval_candidates(program)
        helpers = inference_helpers(program, flow, regions)
        helpers += pretrained_feature_methods(program, flow, [*regions, *helpers])
        for region in [*regions, *helpers, *script_inference_helpers(program, flow, [*regions, *helpers])]:
            forwards = [e for e in region.effects if e.kind == FORWARD and not _generates(e)]
            if not forwards or any(e.nograd is not False for e in forwards):
                continue  # some forward is under no_grad (or a flag): the author thought about it
            if not region.holds():
                continue
            if volatile is None:
                volatile = _volatile_variables(program)
            scope = region.function.node if region.function is not None else region.node
            if any(any(a is scope for a in program.ancestors(call)) for call in volatile):
                continue  # pre-0.4 code: Variable(x, volatile=True) is how autograd was turned off
            if region.function is not None:
                info = region.function
                if decorated_no_grad(program, info.node):
                    continue
                sites = call_sites(program, info)
                if referenced_otherwise(program, info, sites) or any(_site_no_grad(program, flow, s) for s in sites):
                    continue
                if not sites and callers_disable_grad(program.project, program.path, info.qualname) is not False:
                    continue  # uncalled here: the project's callers decide (None: no project, or cannot tell)
                yield self.finding(info.node.name, fix=_decorate(program, info.node))
            else:
                loop = region.node
                func = program.enclosing_function(loop)
                if func is not None:
                    info = flow.function_info(func)
                    if decorated_no_grad(program, func):
                        continue
                    if info is not None:
                        sites = call_sites(program, info)
                        if referenced_otherwise(program, info, sites) or any(_site_no_grad(program, flow, s) for s in sites):
                            continue
                        if (not sites and program.project is not None
                                and callers_disable_grad(program.project, program.path, info.qualname) is not False):
                            continue  # the project's callers disable gradients (or cannot tell)
                start, end = loop_header(loop)
                yield self.finding(start, end_node=end, fix=_wrap(program, loop))


def _generates(effect) -> bool:
    """``model.generate(...)``: Hugging Face's ``generate`` runs under ``torch.no_grad()`` itself."""
    call = effect.inner
    return isinstance(call, cst.Call) and isinstance(call.func, cst.Attribute) and call.func.attr.value == "generate"


def _volatile_variables(program: ProgramModel) -> list[cst.Call]:
    """``Variable(x, volatile=True)`` calls (PyTorch < 0.4 disabled autograd that way)."""
    return [call for call, qual in named_calls(program)
            if qual is not None and qual.rsplit(".", 1)[-1] == "Variable"
            and any(a.keyword is not None and a.keyword.value == "volatile"
                    and isinstance(a.value, cst.Name) and a.value.value == "True" for a in call.args)]


_TORCHTEXT_ITERATORS = frozenset({"BucketIterator", "Iterator", "BPTTIterator"})


def _legacy_torchtext_batches(program: ProgramModel) -> bool:
    """Pre-0.4 code (``loss.data[0]``) that batches with torchtext's legacy iterators: torchtext < 0.3
    built every batch of a ``train=False`` iterator (the test split of ``BucketIterator.splits``) as
    ``Variable(..., volatile=True)``, which is how autograd was turned off then."""
    iterators = any(qual is not None and qual.startswith("torchtext.") and _TORCHTEXT_ITERATORS & set(qual.split("."))
                    for _, qual in named_calls(program))
    return iterators and any(program.per_statement(_indexes_data_at_zero))


def _indexes_data_at_zero(statement: cst.CSTNode) -> bool:
    return any(_data_index_zero(node) for node in nodes_of_types(statement, _SUBSCRIPT))


_SUBSCRIPT = frozenset({cst.Subscript})


def _data_index_zero(node: cst.Subscript) -> bool:
    """``x.data[0]``: reading a scalar out of a 1-element tensor, as PyTorch < 0.4 required."""
    return isinstance(node.value, cst.Attribute) and node.value.attr.value == "data" and len(node.slice) == 1 \
        and isinstance(node.slice[0].slice, cst.Index) and int_literal(node.slice[0].slice.value) == 0


def _grad_disabled_globally(program: ProgramModel) -> bool:
    for call, qual in named_calls(program):
        if qual in ("torch.set_grad_enabled", "torch.autograd.set_grad_enabled"):
            parent = program.parent(call)
            if not isinstance(parent, cst.WithItem):
                return True
    return False


def _site_no_grad(program: ProgramModel, flow, site, _depth: int = 0) -> bool:
    if _depth > 4:
        return False
    for ancestor in program.ancestors(site):
        if isinstance(ancestor, cst.With) and with_no_grad(program, ancestor, False) is not False:
            return True
        if isinstance(ancestor, cst.FunctionDef):
            if decorated_no_grad(program, ancestor):
                return True
            info = flow.function_info(ancestor)
            if info is not None:
                outer = call_sites(program, info)
                return bool(outer) and all(_site_no_grad(program, flow, s, _depth + 1) for s in outer)
            return False
    return False


def _torch_name(program: ProgramModel) -> str | None:
    return "torch" if program.imports.get("torch") == "torch" else None


def _decorate(program: ProgramModel, func: cst.FunctionDef) -> NodeFix | None:
    torch = _torch_name(program)
    if torch is None or func.asynchronous is not None:
        return None
    for node in walk(func.body):
        if isinstance(node, (cst.Yield, cst.Await)):
            return None
    return NodeFix("Decorate with @torch.no_grad()", (InsertBefore(func, f"@{torch}.no_grad()"),), UNSAFE)


def _wrap(program: ProgramModel, loop: cst.CSTNode) -> NodeFix | None:
    torch = _torch_name(program)
    if torch is None:
        return None
    indent = indent_of(program, loop)
    unit = program.module.default_indent
    code = cst.Module(body=[], default_indent=unit, default_newline=program.module.default_newline).code_for_node(
        loop.with_changes(leading_lines=()))
    lines = [line.rstrip("\r") for line in code.rstrip("\r\n").split("\n")]  # line breaks: the engine's
    if any("\"\"\"" in line or "'''" in line for line in lines):
        return None  # multi-line strings must not be re-indented
    body = "\n".join((indent + unit + line) if line.strip() else "" for line in lines)
    return NodeFix("Wrap in with torch.no_grad()", (Replace(loop, f"{torch}.no_grad()".join(["with ", ":\n"]) + body),), UNSAFE)
