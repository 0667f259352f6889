from __future__ import annotations

import libcst as cst

from ..context import RuleContext
from ..lookups import named_calls
from ..model import ProgramModel
from ..name_guesses import names_a_module_base
from ..rule import UNSAFE, Invalid, NodeFix, Replace, Rule, Valid
from ..syntax import call_arg, dotted_name

# torch.nn.functional's dropouts: ``training`` is their third parameter and defaults to True
_DROPOUTS = frozenset("torch.nn.functional." + name for name in (
    "dropout", "dropout1d", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout",
))
# its ``dropout_p`` (the fifth parameter) knows no mode either: 0 must be passed in eval mode
_ATTENTION = "torch.nn.functional.scaled_dot_product_attention"
_ATTENTION_MESSAGE = ("scaled_dot_product_attention(dropout_p=...) drops attention weights in eval mode too: "
                      "pass `p if self.training else 0.0`")


class FunctionalDropoutInEval(Rule):
    """`F.dropout(x, p)` (or `dropout1d/2d/3d`, `alpha_dropout`) in a method of an `nn.Module` without its
    `training` argument: it defaults to `True`, so the dropout keeps dropping after `model.eval()`. Likewise
    `F.scaled_dot_product_attention(..., dropout_p=self.p)`, whose dropout does not depend on the mode at all."""

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
        attribute (`self.dropout_p`) read without `training` is reported.
    """
    fix_safety = """
        Unsafe: evaluation and inference stop dropping units, which is the point, but changes every number they
        produce; a model meant to sample with dropout at inference (Monte Carlo dropout) relies on the old default.
    """
    VALID = [
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
    ]

    def check(self, ctx: RuleContext):
        program = ctx.program
        for call, qual in named_calls(program):
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
