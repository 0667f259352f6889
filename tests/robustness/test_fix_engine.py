"""The fix engine cannot corrupt: positions come from the original text, every fix is verified
(parses, removes its finding, converges, changes something), applicability is carried to every front
end, writes are atomic and never follow a symlink, and `--diff` is a patch for any text."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import libcst as cst
import pytest

from torchsanity.analyzers import analyze_source, fix_source
from torchsanity.analyzers.live import LiveDocument
from torchsanity.analyzers.rule import SAFE, NodeEdit, NodeFix, Rule

ADAM_AFTER_BACKSLASH = (
    "import torch\n"
    "x = 1\n"
    "\\\n"
    "y = 2\n"
    "opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"
)


# ---- positions come from the original text -----------------------------------------------------------


def test_a_backslash_only_line_does_not_shift_positions():
    assert cst.parse_module(ADAM_AFTER_BACKSLASH).code != ADAM_AFTER_BACKSLASH  # libcst drops the line
    (finding,) = analyze_source(ADAM_AFTER_BACKSLASH, "t.py").findings
    assert (finding.code, finding.start.line, finding.start.column) == ("SAN504", 5, 6)
    fixed, _ = fix_source(ADAM_AFTER_BACKSLASH, "t.py", unsafe=True)
    assert fixed == ADAM_AFTER_BACKSLASH.replace("optim.Adam(", "optim.AdamW(")


def test_the_editor_path_uses_the_same_positions():
    report = LiveDocument().analyze(ADAM_AFTER_BACKSLASH, "t.py")
    assert [(f.code, f.start.line) for f in report.findings] == [("SAN504", 5)]
    (edit,) = report.findings[0].fix.edits
    assert (edit.start.line, edit.start.column, edit.new_text) == (5, 18, "AdamW")


def test_a_backslash_line_before_a_function_moves_its_fix_too():
    source = (
        "import torch\n"
        "\\\n"
        "def train(model, loader, optimizer):\n"
        "    for x, y in loader:\n"
        "        loss = model(x).sum()\n"
        "        loss.backward()\n"
        "        optimizer.step()\n"
    )
    (finding,) = [f for f in analyze_source(source, "t.py").findings if f.code == "SAN101"]
    assert finding.start.line == 4  # the loop's line in the file, not in libcst's code without line 2
    fixed, _ = fix_source(source, "t.py")
    assert fixed == source.replace("    for x, y in loader:\n", "    for x, y in loader:\n        optimizer.zero_grad()\n")


@pytest.mark.parametrize("editor", [False, True], ids=["check", "editor"])
def test_a_lone_cr_ends_a_line(editor):
    source = "x = 1\ry = 2\n" + MIXED
    report = LiveDocument().analyze(source, "t.py") if editor else analyze_source(source, "t.py")
    assert [(f.code, f.start.line) for f in report.findings] == [("SAN504", 5), ("SAN101", 6)]
    fixed, _ = fix_source(source, "t.py", unsafe=True)
    assert fixed == source.replace("optim.Adam(", "optim.AdamW(").replace(
        "    for x, y in loader:\n", "    for x, y in loader:\n        optimizer.zero_grad()\n")


def test_a_line_libcst_joins_to_the_next_keeps_the_findings_without_fixes():
    """libcst writes `\\` + newline + `x = 1` after an indented block as one indented line: the lines
    after it are matched again, and a finding on the joined line keeps a position but offers no fix."""
    source = (
        "import torch\n"
        "for x in loader:\n"
        "    pass\n"
        "\\\n"
        "opt = torch.optim.Adam(model.parameters(), weight_decay=1e-4)\n"
        "opt2 = torch.optim.Adam(model.parameters(), weight_decay=1e-4)\n"
    )
    generated = cst.parse_module(source).code
    assert "    opt = torch" in generated  # the joined line, as libcst writes it
    report = analyze_source(source, "t.py")
    assert not report.problems, report.problems
    by_line = {f.start.line: f for f in report.findings}
    assert sorted(by_line) == [5, 6]
    assert by_line[6].fix is not None  # matched exactly again after the joined line
    fixed, _ = fix_source(source, "t.py", unsafe=True)
    compile(fixed, "t.py", "exec")
    assert "opt2 = torch.optim.AdamW(" in fixed


# ---- the known bad fixes -----------------------------------------------------------------------------


def test_bias_false_after_a_parenthesised_last_argument():
    source = (
        "import torch.nn as nn\n"
        "block = nn.Sequential(\n"
        "    nn.Conv2d(3, 64, kernel_size=3, stride=(1, 2)),\n"
        "    nn.BatchNorm2d(64),\n"
        ")\n"
        "layer = nn.Sequential(nn.Conv2d(3, 8, 3, padding=((1))), nn.BatchNorm2d(8))\n"
    )
    fixed, report = fix_source(source, "t.py", unsafe=True)
    compile(fixed, "t.py", "exec")
    assert "stride=(1, 2), bias=False)," in fixed
    assert "padding=((1)), bias=False)" in fixed
    assert not [f for f in report.findings if f.code == "SAN701"]


def test_a_wrap_fix_in_a_mixed_newline_file_writes_no_cr_cr_lf():
    source = (
        "import torch\r\n"
        "\r\n"
        "for epoch in range(3):\n"
        "    model.eval()\r\n"
        "    for x, y in val_loader:\r\n"
        "        out = model(x)\n"
        "        acc += (out.argmax(1) == y).float().mean().item()\r\n"
    )
    fixed, _ = fix_source(source, "t.py", unsafe=True)
    assert "with torch.no_grad():" in fixed, "nothing fixed: the case no longer exercises a wrap"
    assert "\r\r" not in fixed
    compile(fixed, "t.py", "exec")


def test_inserted_lines_take_their_neighbours_line_break():
    source = (
        "import torch\n"
        "def train(model, loader, optimizer):\r\n"
        "    for x, y in loader:\r\n"
        "        loss = model(x).sum()\r\n"
        "        loss.backward()\r\n"
        "        optimizer.step()\r\n"
    )
    fixed, _ = fix_source(source, "t.py")
    assert "        optimizer.zero_grad()\r\n        loss = model(x).sum()\r\n" in fixed


# ---- verification: rules whose fixes are broken on purpose -------------------------------------------


class _Echo(Rule):
    """Reports `y_hat` in `loss(y_hat)` with a fix that writes the same name back."""

    code, name, message = "SAN990", "echo", "echo"
    why = example = fix_doc = known_problems = fix_safety = "test"

    def check(self, program):
        for node in program.module.body:
            for call in _calls(node):
                if isinstance(call.func, cst.Name) and call.func.value == "loss" and call.args:
                    arg = call.args[0].value
                    yield self.finding(arg, fix=NodeFix("Replace y_hat", (NodeEdit("replace", arg, "y_hat"),), SAFE))


class _Grows(Rule):
    """Reports each `step()` statement with a fix that inserts another `step()` before it: every
    `--fix` would add a line."""

    code, name, message = "SAN991", "grows", "grows"
    why = example = fix_doc = known_problems = fix_safety = "test"

    def check(self, program):
        for statement in program.module.body:
            if isinstance(statement, cst.SimpleStatementLine) and "step()" in program.module.code_for_node(statement):
                yield self.finding(statement, fix=NodeFix("Step again", (NodeEdit("insert_before", statement, "step()"),), SAFE))


class _Breaks(Rule):
    """A fix whose result does not parse."""

    code, name, message = "SAN992", "breaks", "breaks"
    why = example = fix_doc = known_problems = fix_safety = "test"

    def check(self, program):
        for node in program.module.body:
            for call in _calls(node):
                if isinstance(call.func, cst.Name) and call.func.value == "loss":
                    yield self.finding(call, fix=NodeFix("Break", (NodeEdit("replace", call.func, "loss("),), SAFE))


def _calls(node):
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, cst.Call):
            yield current
        stack.extend(current.children)


@pytest.mark.parametrize("rule", [_Echo, _Grows, _Breaks], ids=lambda r: r.name)
def test_a_fix_that_fails_verification_is_dropped(rule):
    source = "loss(y_hat)\nstep()\n"
    report = analyze_source(source, "t.py", rules=[rule])
    (finding,) = report.findings
    assert finding.fix is None
    assert finding.message.endswith("(no safe fix)")
    assert "fix" not in finding.to_json()
    fixed, _ = fix_source(source, "t.py", rules=[rule], unsafe=True)
    assert fixed == source


def test_a_good_fix_passes_verification_in_the_editor_path_too():
    from torchsanity.analyzers.engine import reanalyzer
    from torchsanity.analyzers.fix_verify import check_fix

    report = LiveDocument().analyze(ADAM_AFTER_BACKSLASH, "t.py")
    (finding,) = report.findings
    assert check_fix(ADAM_AFTER_BACKSLASH, finding, report.findings, reanalyzer("t.py", None, None, None))
    broken = LiveDocument().analyze("loss(y_hat)\n", "t.py", rules=[_Echo])
    assert not check_fix("loss(y_hat)\n", broken.findings[0], broken.findings, reanalyzer("t.py", None, None, [_Echo]))


# ---- applicability -----------------------------------------------------------------------------------

MIXED = (
    "import torch\n"
    "def train(model, loader):\n"
    "    optimizer = torch.optim.Adam(model.parameters(), weight_decay=1e-4)\n"
    "    for x, y in loader:\n"
    "        loss = model(x).sum()\n"
    "        loss.backward()\n"
    "        optimizer.step()\n"
)


def test_every_fix_says_whether_it_is_safe():
    findings = {f.code: f for f in analyze_source(MIXED, "t.py").findings}
    assert findings["SAN101"].to_json()["fix"]["applicability"] == "safe"
    assert findings["SAN504"].to_json()["fix"]["applicability"] == "unsafe"


def test_fix_applies_safe_fixes_and_unsafe_fixes_adds_the_others(run_cli, tmp_path):
    (tmp_path / "t.py").write_text(MIXED)
    check = run_cli("check", "--no-config", "t.py")
    assert "SAN101 [*] " in check.out and "SAN504 [*]" not in check.out
    assert "[*] 1 fixable with `torchsanity check --fix` (1 hidden fix can be enabled with the `--unsafe-fixes` option)." in check.out
    diff = run_cli("check", "--no-config", "--diff", "t.py")
    assert "+        optimizer.zero_grad()" in diff.out and "AdamW" not in diff.out
    assert "1 hidden fix can be enabled with the `--unsafe-fixes` option" in diff.err
    run_cli("check", "--no-config", "--fix", "t.py")
    text = (tmp_path / "t.py").read_text()
    assert "zero_grad" in text and "AdamW" not in text
    run_cli("check", "--no-config", "--fix", "--unsafe-fixes", "t.py")
    assert "torch.optim.AdamW(" in (tmp_path / "t.py").read_text()


def test_json_output_carries_the_applicability(run_cli, tmp_path):
    (tmp_path / "t.py").write_text(MIXED)
    data = json.loads(run_cli("check", "--no-config", "--format", "json", "t.py").out)
    assert {d["code"]: d["fix"]["applicability"] for d in data if "fix" in d} == {"SAN101": "safe", "SAN504": "unsafe"}


# ---- writes ------------------------------------------------------------------------------------------


def test_a_planted_tmp_symlink_is_never_followed(run_cli, tmp_path):
    project, outside = tmp_path / "project", tmp_path / "outside.txt"
    project.mkdir()
    outside.write_text("precious\n")
    os.chmod(outside, 0o600)
    (project / "t.py").write_text(MIXED)
    os.chmod(project / "t.py", 0o640)
    (project / "t.py.torchsanity-tmp").symlink_to(outside)
    result = run_cli("check", "--no-config", "--fix", "t.py", cwd=project)
    assert result.code in (0, 1), result.err
    assert outside.read_text() == "precious\n" and stat.S_IMODE(outside.stat().st_mode) == 0o600
    assert "zero_grad" in (project / "t.py").read_text()
    assert stat.S_IMODE((project / "t.py").stat().st_mode) == 0o640
    assert (project / "t.py.torchsanity-tmp").is_symlink()
    assert sorted(p.name for p in project.iterdir()) == ["t.py", "t.py.torchsanity-tmp"]  # no temp file left


def test_a_symlinked_file_is_refused_unless_follow_symlinks(run_cli, tmp_path):
    project = tmp_path / "project"
    (project / "real").mkdir(parents=True)
    (project / "real" / "t.py").write_text(MIXED)
    (project / "link.py").symlink_to(project / "real" / "t.py")
    refused = run_cli("check", "--no-config", "--fix", "link.py", cwd=project)
    assert refused.code == 2 and "symbolic link" in refused.err
    assert (project / "link.py").is_symlink() and (project / "real" / "t.py").read_text() == MIXED
    followed = run_cli("check", "--no-config", "--fix", "--follow-symlinks", "link.py", cwd=project)
    assert followed.code in (0, 1), followed.err
    assert (project / "link.py").is_symlink() and "zero_grad" in (project / "real" / "t.py").read_text()


def test_follow_symlinks_stays_inside_the_project(run_cli, tmp_path):
    project, outside = tmp_path / "project", tmp_path / "elsewhere.py"
    project.mkdir()
    outside.write_text(MIXED)
    (project / "link.py").symlink_to(outside)
    result = run_cli("check", "--no-config", "--fix", "--follow-symlinks", "link.py", cwd=project)
    assert result.code == 2 and "outside the project" in result.err
    assert outside.read_text() == MIXED


def test_a_fix_keeps_the_encoding(run_cli, tmp_path):
    text = "# -*- coding: latin-1 -*-\n# caf\xe9\n" + MIXED
    (tmp_path / "t.py").write_bytes(text.encode("latin-1"))
    run_cli("check", "--no-config", "--fix", "t.py")
    data = (tmp_path / "t.py").read_bytes()
    assert b"caf\xe9" in data and b"zero_grad" in data
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbf" + MIXED.encode())
    run_cli("check", "--no-config", "--fix", "bom.py")
    assert (tmp_path / "bom.py").read_bytes().startswith(b"\xef\xbb\xbfimport torch")


# ---- `--diff` is a patch for any text ------------------------------------------------------------------

ODD_TEXTS = {
    "form_feed.py": MIXED.replace("import torch\n", "import torch\n\x0c\n# page two\x0c\n"),
    "lone_cr.py": "x = 1\ry = 2\n" + MIXED,
    "u2028.py": "# line\u2028separator and\u2029paragraph\n" + MIXED,
    "no_final_newline.py": MIXED.rstrip("\n"),
    "crlf.py": MIXED.replace("\n", "\r\n"),
    "cr_only_comment_last.py": MIXED + "# trailing\r",
}


@pytest.mark.parametrize("tool", ["patch", "git"])
def test_diff_applies_with_patch_and_git_apply(run_cli, tmp_path, tool):
    if shutil.which(tool) is None:
        pytest.skip(f"no {tool}")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        for file, text in ODD_TEXTS.items():
            (tmp_path / name / file).write_bytes(text.encode("utf-8"))
    diff = run_cli("check", "--no-config", "--diff", ".", cwd=tmp_path / "a").out
    assert {line[len("--- a/"):] for line in diff.split("\n") if line.startswith("--- a/")} == set(ODD_TEXTS)
    if tool == "patch":
        subprocess.run(["patch", "-p1", "--quiet", "--binary"], input=diff.encode("utf-8"), cwd=tmp_path / "a", check=True)
    else:
        subprocess.run(["git", "apply", "--unidiff-zero", "-"], input=diff.encode("utf-8"), cwd=tmp_path / "a", check=True)
    run_cli("check", "--no-config", "--fix", ".", cwd=tmp_path / "b")
    for file in ODD_TEXTS:
        assert (tmp_path / "a" / file).read_bytes() == (tmp_path / "b" / file).read_bytes(), file


def test_adamw_fix_after_a_compound_statement():
    """Found by the fix property benchmark: the SAN504 fix builder iterated a block as statements."""
    source = "import torch\nif True:\n    pass\nfrom torch.optim import Adam\nopt = Adam(p, weight_decay=0.1)\n"
    report = analyze_source(source, "t.py")
    assert not report.problems, report.problems
    fixed, _ = fix_source(source, "t.py", unsafe=True)
    assert fixed.endswith("from torch.optim import Adam, AdamW\nopt = AdamW(p, weight_decay=0.1)\n")


def test_a_file_changed_while_fixing_is_not_overwritten(tmp_path):
    from torchsanity.server.fix_output import FixWriteError, write_fixed

    path = tmp_path / "t.py"
    path.write_text("x = 2\n")  # what an editor saved after the fixes were computed from "x = 1\n"
    with pytest.raises(FixWriteError, match="changed while it was being fixed"):
        write_fixed(str(path), "x = 1  # fixed\n", expected="x = 1\n")
    assert path.read_text() == "x = 2\n"
    write_fixed(str(path), "x = 3\n", expected="x = 2\n")
    assert path.read_text() == "x = 3\n" and [p.name for p in tmp_path.iterdir()] == ["t.py"]


def test_unified_diff_cuts_lines_only_at_line_feeds():
    from torchsanity.server.fix_output import unified_diff

    before = "a = 1\x0cb = 2\u2028\nc = 3\rd = 4\n"
    after = before.replace("c = 3", "c = 4")
    diff = unified_diff(before, after, "t.py")
    assert diff.split("\n") == [
        "--- a/t.py", "+++ b/t.py", "@@ -1,2 +1,2 @@", " a = 1\x0cb = 2\u2028", "-c = 3\rd = 4", "+c = 4\rd = 4", ""]
