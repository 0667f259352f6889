"""What the dataflow says a name holds: the join of ``if`` / ``elif`` / ``else`` branches (a name bound in every
branch holds one of the branches' values after the statement; a branch left out, or a binding nested deeper,
makes it unknown), and values returned by a helper or a ``self.method()`` of the module."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from torchsanity.analyzers import all_rules, analyze_source
from torchsanity.analyzers.dataflow import SOFTMAX, dataflow
from torchsanity.analyzers.model import ProgramModel


def _use(source: str, name: str = "probs") -> tuple[ProgramModel, cst.Name]:
    """The program and the last ``Name`` node reading ``name`` (the argument of ``sink(...)``)."""
    program = ProgramModel.build(cst.parse_module(textwrap.dedent(source)))
    sink = [c for c in program.calls if program.code_for(c.func) == "sink"][-1]
    value = sink.args[0].value
    assert isinstance(value, cst.Name) and value.value == name
    return program, value


def _definitions(source: str) -> list[str] | None:
    program, use = _use(source)
    defs = dataflow(program).definitions(use)
    return None if defs is None else [program.code_for(value) for _, value in defs]


def test_every_branch_of_an_if_elif_else_reaches_the_use():
    source = """
        import torch.nn.functional as F

        def head(mode, logits):
            if mode == "a":
                probs = F.softmax(logits, dim=1)
            elif mode == "b":
                scale = 2.0
                probs = F.softmax(logits / scale, dim=1)
            else:
                probs = logits.softmax(-1)
            sink(probs)
    """
    assert _definitions(source) == ["F.softmax(logits, dim=1)", "F.softmax(logits / scale, dim=1)", "logits.softmax(-1)"]
    program, use = _use(source)
    assert dataflow(program).activation(use).kind == SOFTMAX


def test_a_branch_that_raises_reaches_nothing():
    assert _definitions("""
        def pick(mode, logits):
            if mode == "soft":
                probs = logits.softmax(1)
            elif mode == "hard":
                probs = logits.argmax(1)
            else:
                raise ValueError(mode)
            sink(probs)
    """) == ["logits.softmax(1)", "logits.argmax(1)"]


def test_the_last_binding_of_each_branch_counts():
    assert _definitions("""
        def f(flag, x):
            if flag:
                probs = first(x)
                probs = second(probs)
            else: probs = third(x)
            sink(probs)
    """) == ["second(probs)", "third(x)"]


@pytest.mark.parametrize("body", [
    # no else: the value from before the if (here: none) may reach the use
    """
    if flag:
        probs = a(x)
    elif other:
        probs = b(x)
    sink(probs)
    """,
    # one branch leaves the name unbound
    """
    probs = z(x)
    if flag:
        probs = a(x)
    else:
        print("keep")
    sink(probs)
    """,
    # a binding nested in a loop of its branch may not run
    """
    if flag:
        probs = a(x)
    else:
        for item in items:
            probs = b(item)
    sink(probs)
    """,
    # tuple unpacking: which element is not known here
    """
    if flag:
        probs = a(x)
    else:
        probs, other = b(x)
    sink(probs)
    """,
])
def test_no_join_when_a_branch_may_leave_another_value(body):
    source = "def f(flag, other, x, items):\n" + textwrap.indent(textwrap.dedent(body), "    ")
    assert _definitions(source) is None


def test_a_use_inside_one_branch_sees_that_branch_only():
    assert _definitions("""
        def f(flag, x):
            if flag:
                probs = a(x)
            else:
                probs = b(x)
                sink(probs)
    """) == ["b(x)"]


def test_a_softmax_bound_in_every_branch_reaches_cross_entropy():
    source = textwrap.dedent("""
        import torch.nn as nn
        import torch.nn.functional as F

        def loss_for(logits, target, temperature):
            if temperature is None:
                probs = F.softmax(logits, dim=1)
            else:
                probs = F.softmax(logits / temperature, dim=1)
            return nn.CrossEntropyLoss()(probs, target)
    """)
    rules = [r for r in all_rules() if r.code == "SAN601"]
    report = analyze_source(source, rules=rules)
    assert [(f.start.line, f.code, f.message) for f in report.findings] == [
        (10, "SAN601", "CrossEntropyLoss expects raw logits, but this input has already been through softmax")]
    # one branch passes logits: nothing to say
    report = analyze_source(source.replace("F.softmax(logits / temperature, dim=1)", "logits / temperature"), rules=rules)
    assert report.findings == []


def test_what_a_helper_or_a_method_returns():
    program, use = _use("""
        import torch.nn as nn

        def make_criterion(smoothing):
            if smoothing:
                return nn.CrossEntropyLoss(label_smoothing=smoothing)
            return nn.CrossEntropyLoss()

        class Trainer:
            def __init__(self):
                self.criterion = self._make_criterion()

            def _make_criterion(self):
                return make_criterion(0.1)

            def step(self, logits, y):
                probs = self.criterion
                sink(probs)
    """)
    defs = dataflow(program).definitions(use)
    assert [program.code_for(value) for _, value in defs] == [
        "nn.CrossEntropyLoss(label_smoothing=smoothing)", "nn.CrossEntropyLoss()"]


@pytest.mark.parametrize("helper", [
    # a generator: what it yields is not what the call returns
    "def build(x):\n    yield nn.Linear(x, 2)\n",
    # a bare return gives None on one path
    "def build(x):\n    if x:\n        return nn.Linear(x, 2)\n    return\n",
    # decorated: the decorator may return anything
    "@cache\ndef build(x):\n    return nn.Linear(x, 2)\n",
])
def test_a_call_stays_itself_when_its_returns_are_not_known(helper):
    program, use = _use("import torch.nn as nn\n" + helper + "probs = build(4)\nsink(probs)\n")
    defs = dataflow(program).definitions(use)
    assert [program.code_for(value) for _, value in defs] == ["build(4)"]


def test_a_softmax_returned_by_a_method_reaches_the_loss_of_another():
    source = textwrap.dedent("""
        import torch.nn as nn
        import torch.nn.functional as F

        class Classifier(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(16, 4)
                self.criterion = self._make_criterion()

            def _make_criterion(self):
                return nn.CrossEntropyLoss()

            def _probabilities(self, x):
                return F.softmax(self.fc(x), dim=1)

            def training_loss(self, x, y):
                probs = self._probabilities(x)
                return self.criterion(probs, y)
    """)
    report = analyze_source(source, rules=[r for r in all_rules() if r.code == "SAN601"])
    assert [(f.start.line, f.code) for f in report.findings] == [(19, "SAN601")]
