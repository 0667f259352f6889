from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import enclosing_function, named_calls
from ..model import ProgramModel
from ..name_guesses import names_a_module_base, speaks_of_dropping
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import call_arg, dotted_name, walk

# torch.nn.functional's dropouts: ``training`` is their third parameter and defaults to True
_DROPOUTS = frozenset("torch.nn.functional." + name for name in (
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
))
# its ``dropout_p`` (the fifth parameter) knows no mode either: 0 must be passed in eval mode
_ATTENTION = "torch.nn.functional.scaled_dot_product_attention"
# what a layer-drop helper of the file draws its random numbers with (``torch.zeros(n).uniform_(0, 1) < p``)
_RANDOM_DRAWS = frozenset({"uniform_", "rand", "rand_like", "random", "random_"})
_ATTENTION_MESSAGE = ("scaled_dot_product_attention(dropout_p=...) drops attention weights in eval mode too: "
                      "pass `p if self.training else 0.0`")


class FunctionalDropoutInEval(Rule):
    """`F.dropout(x, p)` (or `dropout1d/2d/3d`, `alpha_dropout`) in a method of an `nn.Module` without its
    `training` argument: it defaults to `True`, so the dropout keeps dropping after `model.eval()`. Likewise
    `F.scaled_dot_product_attention(..., dropout_p=self.p)`, whose dropout does not depend on the mode at all, and
    a layer-drop helper of the file (`dropout_layers(self.layers, dropout=self.layer_dropout)`: it compares a
    random draw with the rate it is handed and takes no `training` flag) called where nothing reads
    `self.training`."""

    code = "SAN204"
    name = "functional-dropout-in-eval"
    message = ("F.dropout() without training= keeps dropping in eval mode (its training argument defaults to True): "
               "pass training=self.training, or use an nn.Dropout layer")
    why = """
        `model.eval()` switches the modules' `training` flags; `nn.Dropout` reads its own flag, but the functional
        `F.dropout(x, p)` knows nothing of the module it runs in: its `training` parameter defaults to `True`.
        Written without it, the dropout is applied at validation and inference time too: evaluation is noisy,
        pessimistic, and different on every run, although the code calls `model.eval()` as it should.
    """
    example = """
        class Block(nn.Module):
            def forward(self, x):
                return self.proj(F.dropout(x, self.p))   # SAN204: drops in eval mode too
    """
    fix_doc = """
        Pass the module's flag: `F.dropout(x, self.p, training=self.training)`, or build an `nn.Dropout(p)` in
        `__init__` and call it. The quick fix adds `training=self.training` to the call. For attention, pass
        `dropout_p=self.p if self.training else 0.0` (the quick fix writes that).
    """
    known_problems = """
        Only calls inside a method of an `nn.Module` subclass are judged (elsewhere there is no module flag to
        pass): a class of the file that derives from `nn.Module`, or one whose base's name ends in `Module` (the
        base class of another package, a guess). Dropout kept on at inference on purpose (Monte Carlo dropout)
        should say so with `training=True`, which the rule leaves alone. An attention `dropout_p` held in a local
        name or a parameter is left alone (it may have been chosen by the mode already); only a literal rate or an
        attribute (`self.dropout_p`) read without `training` is reported. A layer-drop helper is recognised only in
        the same file, by a random draw compared with one of its parameters; a method that reads `training`
        anywhere is trusted to guard the call. Such calls get no quick fix (what rate means "off" is the helper's).
    """
    fix_safety = """
        Unsafe: evaluation and inference stop dropping units, which is the point, but changes every number they
        produce; a model meant to sample with dropout at inference (Monte Carlo dropout) relies on the old default.
    """
    VALID = [
        # the random mask of a pre-training task is the task, not dropout
        Valid("""
            import torch
            import torch.nn as nn

            def prob_mask_like(t, prob):
                return torch.zeros(t.shape[:2]).uniform_(0, 1) < prob

            class MaskedPatchPrediction(nn.Module):
                def forward(self, patches):
                    mask = prob_mask_like(patches, self.mask_prob)
                    return self.loss(self.transformer(patches.masked_fill(mask[..., None], 0.0)), patches, mask)
        """),
        Valid("""
            import torch
            import torch.nn as nn

            def dropout_layers(layers, dropout):
                to_drop = torch.zeros(len(layers)).uniform_(0., 1.) < dropout
                return [layer for layer, drop in zip(layers, to_drop) if not drop]

            class Transformer(nn.Module):
                def forward(self, x):
                    layers = dropout_layers(self.layers, self.layer_dropout) if self.training else self.layers
                    for block in layers:
                        x = block(x) + x
                    return x
        """),
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Block(nn.Module):
                def forward(self, x):
                    return F.dropout(x, self.p, training=self.training)
        """),
        # the third positional argument is the flag
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Block(nn.Module):
                def forward(self, x):
                    return F.dropout(x, 0.1, self.training)
        """),
        # Monte Carlo dropout, said explicitly
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Bayesian(nn.Module):
                def forward(self, x):
                    return F.dropout(self.fc(x), 0.5, training=True)
        """),
        # not in a module: no flag to pass
        Valid("""
            import torch.nn.functional as F
            def augment(x):
                return F.dropout(x, 0.2)
        """),
        # another library's dropout
        Valid("""
            import torch.nn as nn
            from mylib import dropout
            class Block(nn.Module):
                def forward(self, x):
                    return dropout(x, 0.1)
        """),
        # the attention's dropout chosen by the mode
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Attention(nn.Module):
                def forward(self, q, k, v):
                    return F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout_p if self.training else 0.0)
        """),
        Valid("""
            import torch.nn as nn
            import torch.nn.functional as F
            class Attention(nn.Module):
                def forward(self, q, k, v):
                    p = self.attn_drop if self.training else 0.0
                    return F.scaled_dot_product_attention(q, k, v, None, p, True)
        """),
    ]
    INVALID = [
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class Attention(nn.Module):
                def forward(self, q, k, v, mask=None):
                    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout_p)
            """,
            line=5,
            column=15,
            fixed="""
            import torch.nn as nn
            import torch.nn.functional as F
            class Attention(nn.Module):
                def forward(self, q, k, v, mask=None):
                    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=self.dropout_p if self.training else 0.0)
            """,
        ),
        # a module of another package's base class (its name says so)
        Invalid(
            """
            import torch.nn.functional as F
            from helpers.module import Module
            class Mixer(Module):
                def forward(self, x):
                    return F.dropout(self.mix(x), p=0.2)
            """,
            line=5,
            column=15,
        ),
        Invalid(
            """
            import torch.nn as nn
            import torch.nn.functional as F
            class ResBlock(nn.Module):
                def forward(self, x, t):
                    h = self.conv1(x) + self.time_emb(t)
                    h = self.conv2(F.dropout(self.act(self.norm(h)), self.dropout_rate))
                    return h + x
            """,
            line=6,
            column=23,
            fixed="""
            import torch.nn as nn
            import torch.nn.functional as F
            class ResBlock(nn.Module):
                def forward(self, x, t):
                    h = self.conv1(x) + self.time_emb(t)
                    h = self.conv2(F.dropout(self.act(self.norm(h)), self.dropout_rate, training=self.training))
                    return h + x
            """,
        ),
        Invalid(
            """
            import torch
            from torch import nn

            class Head(nn.Module):
                def forward(self, feats):
                    pooled = feats.mean(1)
                    return self.fc(torch.nn.functional.dropout2d(pooled, p=0.3))
            """,
            line=7,
            column=23,
            fixed="""
            import torch
            from torch import nn

            class Head(nn.Module):
                def forward(self, feats):
                    pooled = feats.mean(1)
                    return self.fc(torch.nn.functional.dropout2d(pooled, p=0.3, training=self.training))
            """,
        ),
        # a layer-drop helper of the file, called whatever the mode
        Invalid(
            """
            import torch
            import torch.nn as nn

            def dropout_layers(layers, dropout):
                if dropout == 0:
                    return layers
                to_drop = torch.zeros(len(layers)).uniform_(0., 1.) < dropout
                return [layer for layer, drop in zip(layers, to_drop) if not drop]

            class Transformer(nn.Module):
                def forward(self, x):
                    for block in dropout_layers(self.layers, dropout=self.layer_dropout):
                        x = block(x) + x
                    return x
            """,
            line=12,
            column=21,
        ),
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        droppers: dict[str, bool] = {}  # helper of the file -> whether it drops at random (asked once)
        for call, qual in named_calls(program):
            helper = _module_function(program, call)
            if helper is not None:
                if _module_method_self(program, call) is None:
                    continue
                name = helper.name.value
                if name not in droppers:
                    droppers[name] = _drops_at_random(helper, ctx.dataflow.params(helper))
                if droppers[name] and not _reads_training(program, call):
                    yield self.finding(call, message=(
                        f"{name}() drops at random whatever the mode: it keeps dropping after model.eval(); "
                        "call it only when self.training (or hand it a rate of 0 in eval mode)"))
                continue
            if qual == _ATTENTION:
                rate = _mode_free_rate(call)
                owner = _module_method_self(program, call) if rate is not None else None
                if owner is not None:
                    yield self.finding(call, message=_ATTENTION_MESSAGE, fix=_attention_fix(program, rate, owner))
                continue
            if qual not in _DROPOUTS or not call.args or _flag_given(call):
                continue
            owner = _module_method_self(program, call)
            if owner is not None:
                yield self.finding(call, fix=_fix(program, call, owner))


def _flag_given(call: cst.Call) -> bool:
    """``training=`` passed, as a keyword or as the third positional argument (or through ``*args`` / ``**kw``)."""
    if any(arg.star for arg in call.args):
        return True
    return any(arg.keyword is not None and arg.keyword.value == "training" for arg in call.args) \
        or len([arg for arg in call.args if arg.keyword is None]) >= 3


def _mode_free_rate(call: cst.Call) -> cst.BaseExpression | None:
    """The ``dropout_p`` of an attention call when it is a rate that ignores the mode: a non-zero number or an
    attribute (``self.dropout_p``); None otherwise (absent, zero, a local name, a conditional expression)."""
    if any(arg.star for arg in call.args):
        return None
    rate = call_arg(call, "dropout_p", 4)
    if isinstance(rate, (cst.Integer, cst.Float)):
        return rate if float(rate.value) != 0 else None
    return rate if isinstance(rate, cst.Attribute) else None


def _module_function(program: ProgramModel, call: cst.Call) -> cst.FunctionDef | None:
    """The module-level function of the file that ``call`` calls by its bare name."""
    if type(call.func) is not cst.Name:
        return None
    info = program.functions.get(call.func.value)
    return info.node if info is not None and info.class_name is None else None


def _drops_at_random(function: cst.FunctionDef, params: dict[str, cst.Param]) -> bool:
    """A helper that drops at random by a rate it is handed (a random draw compared with one of its parameters:
    ``torch.zeros(n).uniform_(0., 1.) < dropout``), says so by its name or the rate's (a random mask of a
    pre-training task, ``prob_mask_like(t, prob)``, is not dropout), and takes no ``training`` flag."""
    if "training" in params:
        return False
    for node in walk(function.body):
        if type(node) is cst.Comparison and len(node.comparisons) == 1:
            sides = (node.left, node.comparisons[0].comparator)
            if any(_draws(a) and type(b) is cst.Name and b.value in params
                   and speaks_of_dropping(function.name.value, b.value) for a, b in (sides, sides[::-1])):
                return True
    return False


def _draws(expr: cst.BaseExpression) -> bool:
    return any(type(node) is cst.Call and _called_name(node.func) in _RANDOM_DRAWS for node in walk(expr))


def _called_name(func: cst.BaseExpression) -> str | None:
    """``uniform_`` of ``torch.zeros(n).uniform_``, ``rand`` of ``torch.rand``."""
    return func.attr.value if type(func) is cst.Attribute else func.value if type(func) is cst.Name else None


def _reads_training(program: ProgramModel, call: cst.Call) -> bool:
    """The method around ``call`` reads a ``training`` flag somewhere (``if self.training:``, a rate chosen by it)."""
    method = enclosing_function(program, call)
    return method is None or any(type(node) is cst.Attribute and node.attr.value == "training" for node in walk(method))


def _module_method_self(program: ProgramModel, call: cst.Call) -> str | None:
    """The name of ``self`` in the method of an ``nn.Module`` class (:func:`_module_class`) that holds ``call``."""
    method = None
    for ancestor in program.ancestors(call):
        if type(ancestor) is cst.FunctionDef:
            method = ancestor
        elif type(ancestor) is cst.ClassDef:
            if method is None or not _module_class(program, ancestor):
                return None
            params = method.params.posonly_params or method.params.params
            decorators = {dotted_name(d.decorator) for d in method.decorators}
            if not params or decorators & {"staticmethod", "classmethod"}:
                return None
            return params[0].name.value
        elif type(ancestor) is cst.Lambda:
            return None
    return None


def _module_class(program: ProgramModel, cls: cst.ClassDef) -> bool:
    """An ``nn.Module`` subclass of this file, or a class whose base's name says it is one."""
    return cls.name.value in program.module_classes or any(
        names_a_module_base(program.qualname(base.value) or "") for base in cls.bases)


def _fix(program: ProgramModel, call: cst.Call, owner: str) -> NodeFix:
    last = call.args[-1].value
    flag = f"{program.code_for(last)}, training={owner}.training"
    return NodeFix("Pass training=self.training", (Replace(last, flag),), UNSAFE)


def _attention_fix(program: ProgramModel, rate: cst.BaseExpression, owner: str) -> NodeFix:
    return NodeFix("Drop attention only in training mode",
                   (Replace(rate, f"{program.code_for(rate)} if {owner}.training else 0.0"),), UNSAFE)
