"""SAN201 on inference helpers that set no mode and get eval mode only from another function's side effect
(``evaluate()`` left the model in eval mode), and the models for which eval() changes nothing."""

from __future__ import annotations

import textwrap

import pytest
from torchsanity.analyzers import analyze_source
from torchsanity.analyzers.rules.san201_eval_without_eval_mode import (
    EvalWithoutEvalMode,
)

TRAIN_AND_EVALUATE = """
import torch

def train(model, loader):
    model.train()
    for x, y in loader:
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()

def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        return sum(loss_fn(model(x), y).item() for x, y in loader)

def show(model, x):
    print(model(x).argmax(1))
"""


def findings(code: str) -> list[tuple[int, str]]:
    report = analyze_source(textwrap.dedent(TRAIN_AND_EVALUATE) + textwrap.dedent(code), rules=[EvalWithoutEvalMode])
    assert not report.problems, report.problems
    return [(f.start.line, f.message) for f in report.findings]


SHOW_LINE = 16


def test_borrowed_in_a_function_scope():
    found = findings("""
        def main():
            for epoch in range(3):
                train(model, train_loader)
                evaluate(model, val_loader)
            show(model, batch)

        main()
    """)
    assert [line for line, _ in found] == [SHOW_LINE]
    assert "evaluate()" in found[0][1] and "show()" in found[0][1]


def test_called_in_a_loop_after_evaluate():
    assert [line for line, _ in findings("""
        for epoch in range(3):
            train(model, train_loader)
            evaluate(model, val_loader)
            show(model, batch)
    """)] == [SHOW_LINE]


@pytest.mark.parametrize("code", [
    # the caller's own eval() after evaluate()
    """
    train(model, train_loader)
    evaluate(model, val_loader)
    model.eval()
    show(model, batch)
    """,
    # the caller's own eval() before evaluate(): the mode is the caller's as much as evaluate()'s
    """
    train(model, train_loader)
    model.eval()
    evaluate(model, val_loader)
    show(model, batch)
    """,
    # train(False) written by the caller
    """
    evaluate(model, val_loader)
    train(model, train_loader)
    model.train(False)
    show(model, batch)
    """,
    # the last mode is training: nothing borrowed (and no inference-only code)
    """
    evaluate(model, val_loader)
    train(model, train_loader)
    show(model, batch)
    """,
    # nothing set any mode before the call: not this case
    """
    show(model, batch)
    """,
    # a context that switches the mode around the call
    """
    evaluate(model, val_loader)
    with evaluating(model):
        show(model, batch)
    """,
    # the helper is also handed out as a callback: callers the rule cannot see
    """
    evaluate(model, val_loader)
    show(model, batch)
    hooks.append(show)
    """,
    # one call in training mode
    """
    for epoch in range(3):
        train(model, train_loader)
        show(model, batch)
        evaluate(model, val_loader)
    show(model, batch)
    """,
    # another model was evaluated
    """
    evaluate(teacher, val_loader)
    show(model, batch)
    """,
])
def test_quiet(code):
    assert findings(code) == []


def test_the_context_manager_helper_switches_the_mode():
    assert findings("""
        import contextlib

        @contextlib.contextmanager
        def evaluating(model):
            model.eval()
            yield model

        evaluate(model, val_loader)
        with evaluating(model):
            show(model, batch)
    """) == []


def test_a_mode_only_helper_is_asked_for_its_mode():
    assert findings("""
        def freeze(model):
            model.eval()

        train(model, train_loader)
        freeze(model)
        show(model, batch)
    """) == []


def test_output_that_is_backpropagated_is_not_inference():
    assert findings("""
        evaluate(model, val_loader)
        out = show(model, batch)
        loss = loss_fn(out, y)
        loss.backward()
    """) == []


MODELS = """
import torch.nn as nn
import torch.nn.functional as F

class Head(nn.Module):
    def __init__(self, layers):
        super().__init__()
        {body}

    def forward(self, x):
        return {forward}

def evaluate(model, loader):
    model.eval()
    return [model(x) for x, y in loader]

model = Head([nn.Linear(8, 8)])
model = model.cuda().to(device)
evaluate(model, val_loader)

def predict(x):
    return model(x).argmax(-1)

print(predict(batch))
"""


@pytest.mark.parametrize("body, forward, reported", [
    ("self.fc = nn.Linear(8, 2)", "self.fc(x)", False),
    ("self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])", "self.layers[0](x)", False),
    ("self.layers = nn.Sequential(*layers)", "self.layers(x)", True),
    ("self.layers = nn.ModuleList(layers)", "self.layers[0](x)", True),
    ("self.body = layers[0]", "self.body(x)", True),
    ("self.fc = nn.Linear(8, 2); self.act = F.relu", "self.act(self.fc(x))", False),
    ("self.fc = nn.Linear(8, 2); self.drop = nn.Dropout(0.1)", "self.fc(self.drop(x))", True),
])
def test_models_eval_changes_nothing_for(body, forward, reported):
    code = MODELS.format(body=body, forward=forward)
    report = analyze_source(code, rules=[EvalWithoutEvalMode])
    assert not report.problems, report.problems
    assert bool(report.findings) is reported, code
