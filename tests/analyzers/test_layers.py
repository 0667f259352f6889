"""The layers under the rules: literal parsers, shared loop helpers, name guesses, per-file caches, the rule
context and typed node edits."""

from __future__ import annotations

import textwrap

import libcst as cst
import pytest

from torchsanity.analyzers.context import RuleContext
from torchsanity.analyzers.flow import BACKWARD, OPT_STEP, SCHED_STEP, flow_of, inner_loop_has
from torchsanity.analyzers.model import ProgramModel
from torchsanity.analyzers.name_guesses import looks_like_eval_loader, looks_like_model, looks_like_optimizer
from torchsanity.analyzers.rule import DeleteStatement, EditKind, InsertAfter, InsertBefore, NodeEdit, Replace
from torchsanity.analyzers.syntax import enclosing_loop, int_literal, number_literal, string_literal


def build(source: str) -> ProgramModel:
    return ProgramModel.build(cst.parse_module(textwrap.dedent(source)))


@pytest.mark.parametrize("text, value", [("3", 3), ("-1", -1), ("0x10", 16), ("1_000", 1000), ("x", None),
                                         ("- -1", None), ("1.5", None)])
def test_int_literal(text, value):
    assert int_literal(cst.parse_expression(text)) == value


@pytest.mark.parametrize("text, value", [("3", 3.0), ("-0.5", -0.5), ("1e-4", 1e-4), ("0x10", 16.0), ("n", None),
                                         ("'1'", None)])
def test_number_literal(text, value):
    assert number_literal(cst.parse_expression(text)) == value


def test_string_literal_takes_plain_strings_only():
    assert string_literal(cst.parse_expression("'val'")) == "val"
    assert string_literal(cst.parse_expression("b'val'")) is None
    assert string_literal(cst.parse_expression("f'{x}'")) is None


def test_enclosing_loop_stops_at_a_function_or_lambda():
    program = build("""
        for epoch in range(3):
            loss.backward()
            def helper():
                opt.step()
            f = lambda: sched.step()
    """)
    calls = {program.code_for(c.func): c for c in program.calls}
    assert enclosing_loop(program, calls["loss.backward"]) is program.loops[0]
    assert enclosing_loop(program, calls["opt.step"]) is None
    assert enclosing_loop(program, calls["sched.step"]) is None


def test_inner_loop_has_asks_for_every_kind_in_one_nested_loop():
    program = build("""
        for epoch in range(3):
            for x, y in loader:
                loss.backward()
                optimizer.step()
            scheduler.step()
    """)
    outer = program.loops[0]
    effects = flow_of(program).loop_effects(outer)
    assert inner_loop_has(outer, effects, BACKWARD, OPT_STEP)
    assert not inner_loop_has(outer, effects, OPT_STEP, SCHED_STEP)  # the scheduler steps in the outer loop


@pytest.mark.parametrize("name, model", [("model", True), ("self.net", True), ("text_model", True),
                                         ("build_model", False), ("Model", False), ("loader", False)])
def test_looks_like_model(name, model):
    assert looks_like_model(name) is model


def test_looks_like_optimizer_is_not_fooled_by_options():
    assert looks_like_optimizer("opt_g") and looks_like_optimizer("self.optimizer")
    assert not looks_like_optimizer("options")


def test_looks_like_eval_loader():
    assert looks_like_eval_loader("val_loader") and looks_like_eval_loader("dataloaders.val")
    assert not looks_like_eval_loader("train_loader") and not looks_like_eval_loader("val")


def _calls(program: ProgramModel) -> int:
    return len(program.calls)


def test_cached_computes_once_per_program_and_the_context_shares_it():
    program = build("model(x)\nloss.backward()\n")
    seen = []

    def count(p: ProgramModel) -> int:
        seen.append(p)
        return len(p.calls)

    first, second = RuleContext(program), RuleContext(program)
    assert first.cached(count) == second.cached(count) == 2
    assert seen == [program]
    assert first.flow is second.flow is flow_of(program)
    assert first.dataflow is second.dataflow
    assert build("f()\n").cached(_calls) == 1  # another program, another value


def test_node_edits_are_typed():
    statement = cst.parse_module("x = 1\n").body[0]
    assert Replace(statement, "y = 1").kind is EditKind.REPLACE
    assert InsertBefore(statement, "a()").kind is EditKind.INSERT_BEFORE
    assert InsertAfter(statement, "a()").kind is EditKind.INSERT_AFTER
    assert DeleteStatement(statement).kind is EditKind.DELETE_STATEMENT
    assert NodeEdit("replace", statement, "y = 1") == NodeEdit(EditKind.REPLACE, statement, "y = 1")
    with pytest.raises(ValueError):
        NodeEdit("rename", statement, "y")
