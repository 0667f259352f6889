"""Incremental analysis (what the language server runs on every keystroke) against a fresh one.

`ParsedSource.reparse` must give a module that prints back to the new text, with the same statements a
full parse finds, keeping the untouched statements as the very same nodes; `LiveDocument.analyze` must
report exactly what `analyze_source` reports on every version of an edited text, syntax errors included.
Edits: scripted editing sessions on the corpus (typing a line key by key, deleting and adding functions,
editing imports and the file's first and last lines, CRLF and tab-indented files) and random edits
(hypothesis).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import libcst as cst
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torchsanity.analyzers import analyze_source
from torchsanity.analyzers.live import LiveDocument
from torchsanity.analyzers.model import ProgramModel
from torchsanity.analyzers.parsed import ParsedSource

HERE = Path(__file__).parent
CORPUS = {p.name: p.read_text(encoding="utf-8") for p in sorted((HERE / "corpus").glob("*.py"))}
TRAIN = CORPUS["loop_bugs_eval_mode.py"]


def full_parse(text: str) -> cst.Module | None:
    """libcst's parse of ``text`` when it parses and prints back to ``text`` (libcst cannot round-trip a
    few pathological layouts, such as a backslash inside indentation); otherwise None."""
    try:
        module = cst.parse_module(text)
    except Exception:
        return None
    return module if module.code == text else None


def statement_shapes(module: cst.Module) -> list[str]:
    """Each top-level statement as CPython's AST sees it: equal lists mean equal statements, whoever
    owns the comments between them."""
    return [ast.dump(ast.parse(module.code_for_node(statement))) for statement in module.body]


def assert_reparse_matches(base: ParsedSource, text: str) -> ParsedSource | None:
    full = full_parse(text)
    try:
        parsed = base.reparse(text)
    except (SyntaxError, cst.ParserSyntaxError):
        assert full is None, "the incremental parse refused text that parses"
        return None
    if full is None:
        return None  # libcst parses it but cannot print it back: nothing to compare
    assert parsed.module.code == text
    assert statement_shapes(parsed.module) == statement_shapes(full)
    assert list(parsed.statement_lines().values()) == list(ParsedSource(text, full).statement_lines().values())
    return parsed


def finding_keys(report) -> list[tuple]:
    return [(f.code, f.start, f.end, f.message, f.fix) for f in report.findings]


def problem_keys(report) -> list[tuple]:
    return [(p.kind, p.message, p.start) for p in report.problems]


def assert_live_matches(document: LiveDocument, text: str, path: str = "train.py") -> None:
    live = document.analyze(text, path)
    fresh = analyze_source(text, path, verify=False)  # the editor verifies a fix when it is asked for
    assert finding_keys(live) == finding_keys(fresh)
    assert problem_keys(live) == problem_keys(fresh)


# ---- scripted editing sessions ---------------------------------------------------------------------


def typing(text: str, anchor: str, line: str) -> list[str]:
    """Every version of ``text`` while ``line`` is typed, key by key, as a new line after ``anchor``."""
    at = text.index(anchor) + len(anchor)
    return [text[:at] + "\n" + line[:n] + text[at:] for n in range(len(line) + 1)]


def sessions() -> dict[str, list[str]]:
    text = TRAIN
    lines = text.split("\n")
    evaluate_start = next(i for i, line in enumerate(lines) if line.startswith("def "))
    evaluate_end = next(i for i in range(evaluate_start + 1, len(lines)) if lines[i] and not lines[i][0].isspace())
    without_function = "\n".join(lines[:evaluate_start] + lines[evaluate_end:])
    crlf = text.replace("\n", "\r\n")
    tabs = "\n".join(line.replace("    ", "\t") for line in lines)
    two_spaces = "\n".join(line.replace("    ", "  ") for line in lines)
    return {
        "type a statement into a loop body": typing(text, "        val_loss = 0.0", "        model.eval()"),
        "type a dedented statement after a function": typing(text, "    return total / len(loader)", "print('done')"),
        "type an indented line after a blank line": typing(text, "    return total / len(loader)\n", "    x = 1"),
        "delete a function, then undo": [without_function, text],
        "append a function at the end": typing(text, text.rstrip("\n"), "\n\ndef later(model):\n    model.eval()\n"),
        "edit the first line": [text.replace('"', "'", 2), "# header\n" + text, text[text.index("\n") + 1:]],
        "edit an import": typing(text, "import torch\n", "import torch.nn.functional as F"),
        "blank lines typed between functions": [text.replace("\n\n\ndef ", "\n\n\n\n\n\ndef ", 1), text],
        "crlf file": typing(crlf, "        val_loss = 0.0\r\n", "        model.eval()\r"),
        "tab-indented file": typing(tabs, "\t\tval_loss = 0.0", "\t\tmodel.eval()"),
        "two-space file": typing(two_spaces, "    val_loss = 0.0", "    model.eval()"),
        "open a string that swallows the rest": typing(text, "        val_loss = 0.0", '        """'),
        "a line extended, then a blank line after it": [text.replace("    total = 0.0\n", "    total = 0.0 * scale\n\n", 1)],
        "a decorator line typed before a function": typing(text, "    return total / len(loader)\n\n", "@torch.no_grad()"),
    }


SESSIONS = sessions()


@pytest.mark.parametrize("name", SESSIONS)
def test_reparse_matches_a_full_parse(name):
    base = ParsedSource.parse(TRAIN if "crlf" not in name else TRAIN.replace("\n", "\r\n"))
    if "tab" in name or "two-space" in name:
        base = ParsedSource.parse(SESSIONS[name][0])
    for text in SESSIONS[name]:
        parsed = assert_reparse_matches(base, text)
        if parsed is not None:
            base = parsed  # the server reparses from the last version that parsed


@pytest.mark.parametrize("name", SESSIONS)
def test_live_document_reports_what_a_fresh_analysis_reports(name):
    document = LiveDocument()
    document.analyze(SESSIONS[name][0], "train.py")
    for text in SESSIONS[name]:
        assert_live_matches(document, text)


def test_untouched_statements_are_kept_and_reindexed_only_where_edited():
    base = ParsedSource.parse(TRAIN)
    model = ProgramModel.build(base.module, "train.py")
    edited = TRAIN.replace("        val_loss = 0.0", "        val_loss = 1.0")
    parsed = base.reparse(edited)
    old_body, new_body = base.module.body, parsed.module.body
    changed = [i for i, (a, b) in enumerate(zip(old_body, new_body)) if a is not b]
    assert len(old_body) == len(new_body) and 1 <= len(changed) <= 2
    reused = ProgramModel.build(parsed.module, "train.py", reuse=model)
    fresh = ProgramModel.build(parsed.module, "train.py")
    assert reused.imports == fresh.imports
    assert reused.functions.keys() == fresh.functions.keys()
    assert [id(c) for c in reused.calls] == [id(c) for c in fresh.calls]
    assert {n: [b.kind for b in bs] for n, bs in reused.bindings.items()} == {
        n: [b.kind for b in bs] for n, bs in fresh.bindings.items()
    }
    assert reused.parents == fresh.parents


def test_a_syntax_error_reports_cpythons_location_and_the_next_version_builds_on_the_last_good_one():
    document = LiveDocument()
    document.analyze(TRAIN, "train.py")
    broken = TRAIN.replace("        val_loss = 0.0", "        val_loss = (0.0")
    report = document.analyze(broken, "train.py")
    assert [p.kind for p in report.problems] == ["syntax-error"]
    assert report.problems == analyze_source(broken, "train.py").problems
    assert_live_matches(document, TRAIN.replace("        val_loss = 0.0", "        val_loss = (0.0)"))


# ---- random edits ----------------------------------------------------------------------------------

PIECES = ["    ", "\n", "x", "(", ")", "\n    y = 1\n", "\n\n", "# c\n", "    # c\n", "if a:\n    pass\n",
          "else:\n    pass\n", "@dec\n", '"""', "'", "\\\n", "def g():\n", "\tz = 2\n", "\r\n", ":",
          "\nclass C:\n  pass\n", "return 1\n", "model.eval()\n", "    optimizer.zero_grad()\n"]
LINES = ["", "    ", "    w = 3", "v = 4", "# x", "        # y", "    return z", "    loss.backward()"]

edit = st.one_of(
    st.tuples(st.just("insert"), st.floats(0, 1), st.sampled_from(PIECES)),
    st.tuples(st.just("delete"), st.floats(0, 1), st.integers(0, 40)),
    st.tuples(st.just("line"), st.floats(0, 1), st.sampled_from(LINES + [None])),
)


def apply(text: str, operation) -> str:
    kind, where, what = operation
    if kind == "insert":
        at = round(where * len(text))
        return text[:at] + what + text[at:]
    if kind == "delete":
        at = round(where * len(text))
        return text[:at] + text[at + what:]
    lines = text.split("\n")
    at = min(int(where * len(lines)), len(lines) - 1)
    if what is None:
        del lines[at]
    else:
        lines.insert(at, what)
    return "\n".join(lines)


FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@FUZZ
@given(st.sampled_from(sorted(CORPUS)), st.lists(edit, min_size=1, max_size=5))
def test_random_edits_reparse_like_a_full_parse(name, operations):
    text = CORPUS[name]
    base = ParsedSource.parse(text)
    for operation in operations:
        text = apply(text, operation)
        parsed = assert_reparse_matches(base, text)
        if parsed is not None:
            base = parsed


@FUZZ
@given(st.sampled_from(sorted(CORPUS)), st.lists(edit, min_size=1, max_size=4))
def test_random_edits_analyse_like_a_fresh_analysis(name, operations):
    text = CORPUS[name]
    document = LiveDocument()
    document.analyze(text, name)
    for operation in operations:
        text = apply(text, operation)
        if full_parse(text) is None and _parses(text):
            continue  # libcst cannot print this text back: positions of the two analyses may differ
        assert_live_matches(document, text, name)


def _parses(text: str) -> bool:
    try:
        cst.parse_module(text)
        return True
    except Exception:
        return False


# ---- one-line edits of training-dense files: findings placed from positions kept across versions ----

EXAMPLES = {p.name: p.read_text(encoding="utf-8") for p in sorted((HERE.parents[1] / "examples").glob("*.py"))}
# A training-dense file: the corpus's training and evaluation loops one after another (many top-level
# statements holding findings, so most findings are placed from kept positions after an edit).
DENSE = "\n\n".join(CORPUS[name].rstrip("\n") for name in sorted(CORPUS) if name.startswith("loop_bugs")) + "\n"
DENSE_FILES = {**{f"corpus/{n}": t for n, t in CORPUS.items()}, **{f"examples/{n}": t for n, t in EXAMPLES.items()},
               "dense.py": DENSE}

# What one keystroke-sized edit does to a line: a new number, a renamed name, a comment, a line break.
one_line_edit = st.one_of(
    st.tuples(st.just("number"), st.floats(0, 1), st.sampled_from(["0", "1", "7", "0.5", "32"])),
    st.tuples(st.just("name"), st.floats(0, 1), st.sampled_from(["loss", "model", "optimizer", "x", "step_"])),
    st.tuples(st.just("comment"), st.floats(0, 1), st.sampled_from(["  # noqa: SAN202", "  # note", "#"])),
    st.tuples(st.just("blank"), st.floats(0, 1), st.sampled_from(["", "    ", "\n"])),
    st.tuples(st.just("delete"), st.floats(0, 1), st.just(None)),
)


def edit_one_line(text: str, operation) -> str:
    """``text`` with one line changed: its first number or name replaced, a comment appended, a blank
    line inserted before it, or the line deleted."""
    kind, where, what = operation
    lines = text.split("\n")
    at = min(int(where * len(lines)), len(lines) - 1)
    line = lines[at]
    if kind == "number":
        lines[at] = re.sub(r"\b\d+(\.\d+)?\b", what, line, count=1)
    elif kind == "name":
        lines[at] = re.sub(r"(?<![.\w])(?!(?:def|class|import|from|for|in|if|return|with|as|not|and|or)\b)[A-Za-z_]\w*",
                           what, line, count=1)
    elif kind == "comment":
        lines[at] = line + what
    elif kind == "blank":
        lines.insert(at, what)
    else:
        del lines[at]
    return "\n".join(lines)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(st.sampled_from(sorted(DENSE_FILES)), st.lists(one_line_edit, min_size=1, max_size=4))
def test_one_line_edits_of_training_files_report_what_a_full_analysis_reports(name, operations):
    text = DENSE_FILES[name]
    document = LiveDocument()
    document.analyze(text, name)
    for operation in operations:
        text = edit_one_line(text, operation)
        if full_parse(text) is None and _parses(text):
            continue  # libcst cannot print this text back: positions of the two analyses may differ
        assert_live_matches(document, text, name)


def test_an_edit_keeps_the_positions_of_the_untouched_statements_and_moves_their_findings():
    document = LiveDocument()
    first = document.analyze(DENSE, "dense.py")
    kept = dict(document._positions._entries)  # (white-box: which statements' positions were computed)
    assert len(kept) > 3, "the dense file should hold findings in many top-level statements"
    edited_line = next(f.start.line for f in first.findings) - 1  # 1-based: the line before the first finding
    lines = DENSE.split("\n")
    text = "\n".join(lines[:edited_line] + ["# a new line above the first finding"] + lines[edited_line:])
    second = document.analyze(text, "dense.py")
    assert [(f.code, f.start.line + 1, f.message) for f in first.findings] == \
        [(f.code, f.start.line, f.message) for f in second.findings if f.start.line > edited_line]
    reused = [key for key, entry in document._positions._entries.items() if kept.get(key) is entry]
    assert len(reused) >= len(kept) - 2  # at most the edited statement and its neighbour were placed afresh
    assert finding_keys(second) == finding_keys(analyze_source(text, "dense.py", verify=False))
