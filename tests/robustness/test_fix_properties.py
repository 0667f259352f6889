"""Property tests of the fixes, as ruff runs its fixes over generated code: Hypothesis draws valid files
made of the rules' own patterns, corpus scripts and awkward filler (fix_generator.py), and every fix
must give text that parses, reach its fixed point in one pass (no applicable fix left, a second run
changes nothing), and `--diff` must be a patch that turns the file into exactly what `--fix` writes.
Sized for CI (about 30 s); tests/bench/bench_fix_property.py runs 10,000 files."""

from __future__ import annotations

import random

import libcst as cst
from hypothesis import HealthCheck, given, settings, strategies as st

from fix_generator import PIECES, apply_unified_diff, generate
from torchsanity.analyzers import fix_source
from torchsanity.server.fix_output import keep_line_endings, unified_diff


def check_fix_properties(source: str, unsafe: bool) -> None:
    fixed, report = fix_source(source, "generated.py", unsafe=unsafe)
    fixed = keep_line_endings(source, fixed)
    try:
        cst.parse_module(source)
    except cst.ParserSyntaxError:  # valid for CPython, not for libcst (`\\` alone before a block):
        assert fixed == source and report.problems  # reported, never touched
        return
    compile(fixed, "generated.py", "exec", dont_inherit=True)  # parses for CPython ...
    cst.parse_module(fixed)  # ... and for libcst
    assert not [f for f in report.findings if f.fix is not None and (unsafe or f.fix.is_safe)], "not one pass"
    again, _ = fix_source(fixed, "generated.py", unsafe=unsafe)
    assert keep_line_endings(fixed, again) == fixed, "not idempotent"
    if fixed != source:
        assert apply_unified_diff(source, unified_diff(source, fixed, "generated.py")) == fixed


@settings(max_examples=60, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(min_value=0, max_value=2**32 - 1), unsafe=st.booleans())
def test_generated_files_fix_cleanly(seed, unsafe):
    check_fix_properties(generate(random.Random(seed)), unsafe)


@settings(max_examples=40, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.sampled_from(PIECES), min_size=1, max_size=4),
       newline=st.sampled_from(["\n", "\r\n"]), final_newline=st.booleans())
def test_rule_patterns_in_any_order_fix_cleanly(pieces, newline, final_newline):
    text = "".join(pieces).replace("\n", newline)
    if not final_newline:
        text = text.rstrip("\r\n")
    try:
        compile(text, "<pieces>", "exec", dont_inherit=True)
    except SyntaxError:
        return  # pieces that only make sense alone (a continuation at the end)
    check_fix_properties(text, unsafe=True)
