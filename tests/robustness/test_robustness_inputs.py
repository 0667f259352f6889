"""Bad input never crashes anything: syntax errors, binary and non-UTF-8 files, empty and huge files,
pathological nesting, and rules that raise. Every case gets a problem or findings — never a traceback."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import libcst as cst
import pytest

from torchsanity.analyzers import analyze_file, analyze_source, get_rule
from torchsanity.analyzers.rule import Rule

ADAM_L2 = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"


def assert_no_internal_error(report) -> None:
    assert not [p for p in report.problems if p.kind == "internal-error"], report.problems


# ---- odd text ----------------------------------------------------------------------------------------

ODD_SOURCES = {
    "empty": "",
    "newline": "\n",
    "blanks": "   \n\n\t\n",
    "comment-only": "# nothing here\n",
    "no-trailing-newline": "import torch",
    "bom": "\ufeffimport torch\n",
    "form-feed": "\f\nimport torch\n\f\n",
    "crlf": "import torch\r\nx = 1\r\n",
    "cr-only": "import torch\rx = 1\r",
    "mixed-tabs": "def f():\n\tif x:\n        pass\n",
    "unexpected-indent": "    x = 1\n",
    "nul": "x = '\x00'\n",
    "ctrl-z": "x = 1\n\x1a\n",
    "lone-surrogate": "x = '\ud800'\n",
    "unterminated-string": "x = 'abc\n",
    "unterminated-triple": 'x = """abc\n\n',
    "unclosed-bracket": "model = nn.Sequential(\n    nn.Linear(1, 2),\n",
    "extra-closer": "x = (1))\n",
    "python2-print": 'print "hello"\n',
    "half-typed-loop": "for x, y in loader:\n    loss = crit(model(x), y)\n    loss.\n",
    "half-typed-call": "opt = torch.optim.Adam(model.parameters(), weight_decay=\n",
    "garbage": "}}}{{{ ::: ??? @@@\n",
    "only-operators": "+-*/%\n",
    "keyword-soup": "def class if else return lambda yield\n",
    "long-line": "x = '" + "a" * 1_000_000 + "'\n",
    "many-statements-one-line": "x = 1; " * 5000 + "\n",
    "match": "match cmd:\n    case [x, *rest]:\n        pass\n    case _:\n        pass\n",
    "walrus-async": "async def f():\n    async with a as b:\n        if (n := len(b)) > 1:\n            await g()\n",
    "fstring-nested": "x = f\"{a!r:>{width}} {b:{c}}\"\n",
    "decorators": "@torch.no_grad()\n@functools.lru_cache\ndef f(): ...\n",
    "star-exprs": "a, *b = c\nf(*args, **kwargs)\nprint(*[1], **{})\n",
    "unicode-names": "données = torch.randn(3)\nλ = 0.1\nopt = torch.optim.Adam(m.parameters(), weight_decay=λ)\n",
    "global-nonlocal": "def f():\n    global opt\n    def g():\n        nonlocal x\n",
    "deep-indent-99": "".join("    " * i + "if x:\n" for i in range(99)) + "    " * 99 + "pass\n",
    "deep-indent-120": "".join("    " * i + "if x:\n" for i in range(120)) + "    " * 120 + "pass\n",
    "nested-parens-150": "x = " + "(" * 150 + "1" + ")" * 150 + "\n",
    "long-sum-300": "x = 1" + " + 1" * 300 + "\n",
    "training-loop-in-class-body": "class T:\n    for x in loader:\n        loss.backward()\n        opt.step()\n",
    "loop-in-lambda": "f = lambda: [opt.step() for _ in range(3)]\n",
    "backward-outside-loop": "loss.backward()\nopt.step()\nopt.zero_grad()\n",
    "weird-targets": "x[0], y.z, *w = 1, 2, 3\n(a) = 1\n[b] = [2]\nc: int\nd: int = 4\n",
    "import-weird": "from . import *\nfrom .. import a as b\nimport a.b.c as d\nfrom torch import (optim as o,)\n",
}


@pytest.mark.parametrize("source", ODD_SOURCES.values(), ids=ODD_SOURCES.keys())
def test_odd_source_never_raises(source):
    report = analyze_source(source, "odd.py")
    assert_no_internal_error(report)
    for problem in report.problems:
        assert problem.kind == "syntax-error"
        assert problem.start.line >= 1 and problem.start.column >= 0
        assert problem.message.startswith(("syntax error", "cannot parse"))


def test_syntax_error_is_one_problem():
    report = analyze_source("def f(:\n    pass\n", "broken.py")
    assert report.findings == []
    assert [p.kind for p in report.problems] == ["syntax-error"]


def test_a_syntax_error_in_an_unsaved_buffer_is_located_in_its_text_not_the_saved_file(tmp_path):
    """The editor analyses text that differs from the file on disk under the same name: the error's
    location comes from the text (CPython would read the offending line back from the saved file)."""
    saved = tmp_path / "train.py"
    saved.write_text("import torch\n\n\n\nx\n")  # its line 5 is shorter than the buffer's indent
    buffer = "import torch\n\ndef train():\n    pass\n        model.train()\n"  # unexpected indent
    report = analyze_source(buffer, str(saved))
    assert [(p.message, p.start.line, p.start.column) for p in report.problems] == [
        ("syntax error: unexpected indent", 5, 7)]  # where CPython puts it in this text


# ---- files on disk -----------------------------------------------------------------------------------

FILES = {
    "binary.py": b"\x7fELF\x02\x01\x01\x00\x00\x00" + bytes(range(256)),
    "invalid-utf8.py": b"x = '\xff\xfe\xfa'\n",
    "utf16.py": "import torch\n".encode("utf-16"),
    "bogus-cookie.py": b"# -*- coding: no-such-codec -*-\nx = 1\n",
    "latin1.py": b"# -*- coding: latin-1 -*-\nname = '\xe9t\xe9'\n",
    "empty.py": b"",
    "bom.py": b"\xef\xbb\xbf" + ADAM_L2.encode(),
    "syntax.py": b"def f(:\n",
}


@pytest.mark.parametrize("name", FILES, ids=FILES.keys())
def test_odd_file_never_raises(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(FILES[name])
    report = analyze_file(path)
    assert_no_internal_error(report)
    assert all(p.kind in ("syntax-error", "unreadable") for p in report.problems)


def test_unreadable_kinds(tmp_path):
    (tmp_path / "binary.py").write_bytes(FILES["binary.py"])
    (tmp_path / "bad.py").write_bytes(FILES["invalid-utf8.py"])
    for name in ("binary.py", "bad.py"):
        assert [p.kind for p in analyze_file(tmp_path / name).problems] == ["unreadable"]
    assert [p.kind for p in analyze_file(tmp_path / "missing.py").problems] == ["unreadable"]
    assert [p.kind for p in analyze_file(tmp_path).problems] == ["unreadable"]  # a directory
    latin = tmp_path / "latin.py"
    latin.write_bytes(FILES["latin1.py"])
    assert analyze_file(latin).problems == []
    bom = tmp_path / "bom.py"
    bom.write_bytes(FILES["bom.py"])
    assert [(f.code, f.start.line) for f in analyze_file(bom).findings if f.code == "SAN504"] == [("SAN504", 2)]


def test_cli_reports_each_bad_file_once_and_checks_the_rest(run_cli, tmp_path):
    for name, data in FILES.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "train.py").write_text(ADAM_L2, encoding="utf-8")
    result = run_cli("check", "--no-config", ".")
    assert result.code == 1
    assert "Traceback" not in result.out + result.err
    lines = result.out.splitlines()
    for name in ("binary.py", "invalid-utf8.py", "utf16.py", "bogus-cookie.py", "syntax.py"):
        mine = [line for line in lines if line.startswith(f"{name}:")]
        assert len(mine) == 1, (name, mine)
        assert any(f": SAN000 {what}" in mine[0] for what in ("syntax error", "cannot read file", "cannot parse")), mine
    assert [line for line in lines if line.startswith("syntax.py:")][0].startswith("syntax.py:1:")
    assert "train.py:2:7: SAN504" in result.out
    assert "bom.py:2:7: SAN504" in result.out
    assert not [line for line in lines if line.startswith(("empty.py", "latin1.py"))]


def _training_block(i: int) -> str:
    return textwrap.dedent(
        f"""
        def train_{i}(model, loader, optimizer, criterion):
            model.train()
            for x, y in loader:
                optimizer.zero_grad()
                loss = criterion(model(x), y)
                loss.backward()
                optimizer.step()
            return loss.item()
        """
    )


def _huge_source() -> str:
    blocks, lines, i = [], 1, 0
    while lines < 50_000:
        block = _training_block(i)
        blocks.append(block)
        lines += block.count("\n")
        i += 1
    source = "import torch\n" + "".join(blocks) + ADAM_L2.split("\n", 1)[1]
    assert source.count("\n") >= 50_000
    return source


@pytest.mark.timeout(900)
def test_fifty_thousand_line_file(run_cli, tmp_path):
    """Parse, model, positions and fixes on a 50,000-line file (two cheap rules: the engine's own cost)."""
    source = _huge_source()
    (tmp_path / "huge.py").write_text(source, encoding="utf-8")
    started = time.perf_counter()
    result = run_cli("check", "--no-config", "--select", "SAN504,SAN101", "--format", "json", "huge.py")
    elapsed = time.perf_counter() - started
    assert result.code == 1, result.err
    import json

    data = json.loads(result.out)
    assert [(d["code"], d["line"]) for d in data] == [("SAN504", source.count("\n"))]
    print(f"50k-line file checked in {elapsed:.1f}s")


@pytest.mark.timeout(240)
def test_fifty_thousand_line_file_with_every_rule(run_cli, tmp_path):
    source = _huge_source()
    (tmp_path / "huge.py").write_text(source, encoding="utf-8")
    result = run_cli("check", "--no-config", "--format", "json", "huge.py")
    assert result.code == 1, result.err
    assert "Traceback" not in result.err


# ---- pathological nesting: run in a child process, so that a crash in native code fails the test
# instead of killing pytest. CPython itself refuses more than 200 nested brackets.

_CHILD = """
import sys
from torchsanity.analyzers import analyze_source
source = sys.stdin.read()
report = analyze_source(source, "deep.py")
print(sorted({p.kind for p in report.problems}), len(report.findings))
"""


def _analyze_in_child(source: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _CHILD], input=source, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("depth", [500, 1000])
def test_nested_brackets_within_native_parser_limits(depth):
    proc = _analyze_in_child("x = " + "(" * depth + "1" + ")" * depth + "\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "internal-error" not in proc.stdout


@pytest.mark.parametrize(
    "source",
    [
        "x = " + "(" * 3000 + "1" + ")" * 3000 + "\n",
        "x = " + "[" * 3000 + "]" * 3000 + "\n",
        "x = " + "{1: " * 5000 + "1" + "}" * 5000 + "\n",
        "x = f" + "(" * 3000 + ")" * 3000 + "\n",
    ],
    ids=["parens", "lists", "dicts", "calls"],
)
def test_pathological_nesting_is_a_syntax_error_not_a_crash(source):
    proc = _analyze_in_child(source)
    assert proc.returncode == 0, f"the analysis process died with {proc.returncode}: {proc.stderr[-500:]}"
    assert "syntax-error" in proc.stdout


def test_long_expression_with_a_finding_does_not_escape():
    source = ADAM_L2 + "x = 1" + " + 1" * 1000 + "\n"
    report = analyze_source(source, "long.py")
    assert_no_internal_error(report)
    assert "SAN504" in {f.code for f in report.findings}


# ---- rules that raise --------------------------------------------------------------------------------


class RaisingRule(Rule):
    """Raises on every module."""

    code = "SAN990"
    name = "raising-rule"
    message = "never reported"
    why = example = fix_doc = "test only"

    def check(self, model):
        raise ZeroDivisionError("deliberately broken")


class RaisingAfterYieldRule(Rule):
    """Yields nothing useful, then raises halfway through."""

    code = "SAN991"
    name = "raising-midway"
    message = "never reported"
    why = example = fix_doc = "test only"

    def check(self, model):
        for i, _call in enumerate(model.calls):
            if i == 1:
                raise KeyError("midway")
        return
        yield


class NotIterableRule(Rule):
    """Returns a number instead of findings."""

    code = "SAN992"
    name = "not-iterable"
    message = "never reported"
    why = example = fix_doc = "test only"

    def check(self, model):
        return 42


class RecursingRule(Rule):
    """Recurses without end."""

    code = "SAN993"
    name = "recursing"
    message = "never reported"
    why = example = fix_doc = "test only"

    def check(self, model):
        def down(n):
            return down(n + 1)

        return down(0)


class ForeignNodeRule(Rule):
    """Reports a node that is not in the module (a rule bug the engine must survive)."""

    code = "SAN994"
    name = "foreign-node"
    message = "foreign"
    why = example = fix_doc = "test only"

    def check(self, model):
        yield self.finding(cst.Name("not_in_the_tree"))


BROKEN = [RaisingRule, RaisingAfterYieldRule, NotIterableRule, RecursingRule]


@pytest.mark.parametrize("broken", BROKEN, ids=lambda r: r.code)
def test_a_raising_rule_is_one_internal_error_and_the_others_still_run(broken):
    adam = get_rule("SAN504")
    report = analyze_source(ADAM_L2, "train.py", rules=[broken, adam])
    internal = [p for p in report.problems if p.kind == "internal-error"]
    assert len(internal) == 1, report.problems
    assert broken.code in internal[0].message
    assert [f.code for f in report.findings] == ["SAN504"]


def test_two_broken_rules_two_problems():
    report = analyze_source(ADAM_L2, "train.py", rules=[RaisingRule, get_rule("SAN504"), NotIterableRule])
    assert sorted(p.message.split(":")[0] for p in report.problems) == [
        "internal error in SAN990", "internal error in SAN992"]
    assert [f.code for f in report.findings] == ["SAN504"]


def test_a_rule_reporting_a_foreign_node_is_contained():
    report = analyze_source(ADAM_L2, "train.py", rules=[ForeignNodeRule, get_rule("SAN504")])
    assert [f.code for f in report.findings] == ["SAN504"]
    assert [p.kind for p in report.problems] == ["internal-error"]


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_raising_rule_through_the_cli(run_cli, monkeypatch, tmp_path, jobs):
    from torchsanity.analyzers import all_rules, engine

    monkeypatch.setattr(engine, "all_rules", lambda: (*all_rules(), RaisingRule))
    for i in range(14):  # enough files for the worker pool with -j 2
        (tmp_path / f"train{i:02}.py").write_text(ADAM_L2, encoding="utf-8")
    result = run_cli("check", "--no-config", "-j", jobs, ".")
    assert result.code == 2  # an internal error
    assert "Traceback" not in result.out + result.err
    for i in range(14):
        mine = [line for line in result.out.splitlines() if line.startswith(f"train{i:02}.py:")]
        assert sum("internal error in SAN990" in line for line in mine) == 1, mine
        assert sum(": SAN504 " in line for line in mine) == 1, mine


def test_engine_exception_is_contained_per_file_in_the_cli(run_cli, monkeypatch, tmp_path):
    """Even an exception that escapes the engine costs one file, not the run."""
    from torchsanity.analyzers import engine

    real = engine.analyze_source

    def flaky(source, path, *args, **kwargs):
        if str(path).endswith("bad.py"):
            raise RuntimeError("engine exploded")
        return real(source, path, *args, **kwargs)

    # the checker's worker and check_file both import the engine's function when they call it
    monkeypatch.setattr(engine, "analyze_source", flaky)
    (tmp_path / "bad.py").write_text(ADAM_L2, encoding="utf-8")
    (tmp_path / "good.py").write_text(ADAM_L2, encoding="utf-8")
    result = run_cli("check", "--no-config", "-j", "1", ".")
    assert result.code == 2
    assert "bad.py:1:1: SAN000 internal error: RuntimeError: engine exploded" in result.out
    assert "good.py:2:7: SAN504" in result.out
