"""The parser in a box: whatever one file does to the parser (nest 20,000 deep, hold a 5 MB literal, crash
the worker, run past its time), it costs that file one `SAN000` line and the other files are checked.

Every run here is the real CLI in a child process, with small budgets so no test takes long."""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from pathological import BUGGY, BUGGY_FINDING, NESTING, big_literal, nested

from torchsanity.analyzers.source import MAX_NESTING, nesting_depth


def check(folder: Path, *args: str, stack_kb: int | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``torchsanity check --no-config --no-cache ARGS… .`` in ``folder`` (optionally with a smaller stack)."""

    def limit_stack() -> None:
        resource.setrlimit(resource.RLIMIT_STACK, (stack_kb * 1024, resource.getrlimit(resource.RLIMIT_STACK)[1]))

    return subprocess.run(
        [sys.executable, "-m", "torchsanity.server", "check", "--no-config", "--no-cache", *args, "."],
        cwd=folder, capture_output=True, text=True, timeout=timeout,
        env=dict(os.environ, PYTHONIOENCODING="utf-8"), preexec_fn=limit_stack if stack_kb else None,
    )


def lines_of(output: str, name: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith(f"{name}:")]


def assert_one_san000(output: str, name: str, reason: str) -> str:
    mine = lines_of(output, name)
    assert len(mine) == 1, (name, mine, output[-2000:])
    assert re.match(rf"{re.escape(name)}:\d+:\d+: SAN000 {reason}", mine[0]), mine[0]
    return mine[0]


# ---- the defect: one deep `and` took the whole run down ----------------------------------------------


@pytest.mark.parametrize("jobs", ["0", "1"])
def test_a_12000_term_and_costs_one_line_next_to_a_buggy_file(tmp_path, jobs):
    """Before: with fewer than 12 files the run segfaulted with no output at all."""
    (tmp_path / "deep.py").write_text(nested("and", 12_000), encoding="utf-8")
    (tmp_path / "buggy.py").write_text(BUGGY, encoding="utf-8")
    (tmp_path / "clean.py").write_text("import torch\n", encoding="utf-8")
    proc = check(tmp_path, "-j", jobs)
    assert proc.returncode == 1, proc.stderr
    assert BUGGY_FINDING in proc.stdout
    assert_one_san000(proc.stdout, "deep.py", "skipped: nests too deeply to parse safely")
    assert "Traceback" not in proc.stdout + proc.stderr


def test_20k_deep_nesting_of_every_kind_is_refused_before_parsing(tmp_path):
    """Each kind is refused by the nesting guard (a crash of the worker would say "crashed" instead)."""
    for kind in NESTING:
        (tmp_path / f"deep_{kind}.py").write_text(nested(kind, 20_000), encoding="utf-8")
    (tmp_path / "buggy.py").write_text(BUGGY, encoding="utf-8")
    proc = check(tmp_path, "--format", "json", "-j", "2")
    assert proc.returncode == 1, proc.stderr
    data = json.loads(proc.stdout)
    assert all(item["code"] is not None for item in data)
    for kind in NESTING:
        mine = [item for item in data if item["path"] == f"deep_{kind}.py"]
        assert len(mine) == 1 and mine[0]["code"] == "SAN000", (kind, mine)
        assert mine[0]["message"].startswith("skipped: nests too deeply to parse safely"), (kind, mine)
    assert [item["code"] for item in data if item["path"] == "buggy.py"] == ["SAN504"]


@pytest.mark.parametrize("kind", sorted(NESTING))
def test_the_guard_counts_every_kind(kind):
    """The token scan is an upper bound that grows with the depth of every kind, and that stays far
    below the limit on ordinary code."""
    assert nesting_depth(nested(kind, 5_000))[0] > MAX_NESTING
    assert nesting_depth(nested(kind, 50))[0] < MAX_NESTING // 4


def test_the_guard_lets_ordinary_code_through():
    source = (
        "import torch\n"
        "x = [" + ", ".join(f"a.b.c({i}) + -d[{i}] ** 2" for i in range(20_000)) + "]\n"  # long, but flat
        "y = {" + ", ".join(f"'k{i}': (lambda: not a and b or c if d else e)" for i in range(5_000)) + "}\n"
        "z = f'{a!r:>{width}} {b:{c}}'\n"
    )
    assert nesting_depth(source)[0] < 20


# ---- budgets -------------------------------------------------------------------------------------------


def test_a_5mb_literal_costs_at_most_its_memory_budget_and_one_line(tmp_path):
    (tmp_path / "data.py").write_text(big_literal(5), encoding="utf-8")
    (tmp_path / "buggy.py").write_text(BUGGY, encoding="utf-8")
    proc = check(tmp_path, "--file-memory", "200", "--file-timeout", "60")
    assert proc.returncode == 1, proc.stderr
    assert BUGGY_FINDING in proc.stdout
    assert_one_san000(proc.stdout, "data.py", r"skipped: .*200 MB memory budget \(--file-memory\)")
    assert proc.stderr == ""  # the native abort's own message stays in the worker


def test_a_file_over_its_time_budget_costs_one_line(tmp_path):
    (tmp_path / "slow.py").write_text(nested("subscript-chain", 900), encoding="utf-8")  # seconds to parse
    (tmp_path / "buggy.py").write_text(BUGGY, encoding="utf-8")
    proc = check(tmp_path, "-j", "1", "--file-timeout", "0.3")
    assert proc.returncode == 1, proc.stderr
    assert BUGGY_FINDING in proc.stdout
    assert_one_san000(proc.stdout, "slow.py", r"skipped: not checked within its 0.3 s time budget \(--file-timeout\)")


@pytest.mark.parametrize("files", [1, 14], ids=["one-worker", "pool"])
def test_a_worker_that_segfaults_costs_one_file(tmp_path, files):
    """900 nested lambdas pass the guard (made for the usual 8 MB stack); under a 2 MB stack libcst's
    parser overflows it and the worker dies with SIGSEGV. The worker is replaced, the rest are checked."""
    (tmp_path / "lambdas.py").write_text(nested("lambda", 900), encoding="utf-8")
    for i in range(files):
        (tmp_path / f"buggy{i:02}.py").write_text(BUGGY, encoding="utf-8")
    proc = check(tmp_path, "-j", "1" if files == 1 else "2", stack_kb=2048)
    assert proc.returncode == 1, proc.stderr
    assert_one_san000(proc.stdout, "lambdas.py", r"skipped: the checker crashed on this file \(SIGSEGV\)")
    for i in range(files):
        mine = lines_of(proc.stdout, f"buggy{i:02}.py")
        assert len(mine) == 1 and mine[0].startswith(BUGGY_FINDING.replace("buggy.py", f"buggy{i:02}.py")), mine


def test_budget_flags_are_validated(tmp_path):
    (tmp_path / "buggy.py").write_text(BUGGY, encoding="utf-8")
    for bad in (["--file-timeout", "-1"], ["--file-memory", "lots"]):
        proc = check(tmp_path, *bad)
        assert proc.returncode == 2 and "budget" in proc.stderr, proc.stderr


# ---- decoding and old Python ------------------------------------------------------------------------

ENCODING_PROBLEMS = {
    "rot13.py": b"# coding: rot13\nx = 1\n",
    "hex_cookie.py": b"# coding: hex\nx = 1\n",
    "zlib_cookie.py": b"# -*- coding: zlib_codec -*-\nx = 1\n",
    "future_fstrings.py": b"# -*- coding: future_fstrings -*-\nx = f'{1}'\n",
    "utf16_cookie.py": b"# coding: utf-16\nx = 1\n",
    "bom_and_latin1.py": b"\xef\xbb\xbf# coding: latin-1\nx = 1\n",
    "not_utf8.py": b"x = '\xff\xfe'\n",
}


def test_coding_cookies_python_rejects_are_one_san000_line(tmp_path):
    for name, data in ENCODING_PROBLEMS.items():
        (tmp_path / name).write_bytes(data)
        assert subprocess.run([sys.executable, "-c", f"compile(open({name!r}, 'rb').read(), {name!r}, 'exec')"],
                              cwd=tmp_path, capture_output=True).returncode == 1  # Python refuses each one too
    (tmp_path / "latin1.py").write_bytes(b"# -*- coding: latin-1 -*-\nname = '\xe9t\xe9'\n" + BUGGY.encode())
    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbf# coding: utf-8\n" + BUGGY.encode())
    proc = check(tmp_path)
    assert proc.returncode == 1 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    for name in ENCODING_PROBLEMS:
        assert_one_san000(proc.stdout, name, "cannot (parse: encoding problem|read file)")
    assert "rot13.py:1:1: SAN000 cannot parse: encoding problem: 'rot13' is not a text encoding" in proc.stdout
    assert "future_fstrings.py:1:1: SAN000 cannot parse: encoding problem: unknown encoding: future_fstrings" in proc.stdout
    assert lines_of(proc.stdout, "latin1.py") and lines_of(proc.stdout, "latin1.py")[0].startswith("latin1.py:4:7: SAN504")
    assert lines_of(proc.stdout, "bom.py")[0].startswith("bom.py:3:7: SAN504")


OLD_PYTHON = {
    "print_statement.py": ("import torch\nprint 'epoch', epoch\n", "a Python 2 print statement"),
    "async_kwarg.py": ("import torch\nx = x.cuda(async=True)\n", "`async` / `await` used as a name"),
    "except_comma.py": ("import torch\ntry:\n    pass\nexcept ValueError, e:\n    pass\n", "Python 2 `except E, e:`"),
}


def test_old_python_is_cannot_parse_with_a_reason_and_a_code(tmp_path):
    for name, (source, _) in OLD_PYTHON.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    (tmp_path / "broken.py").write_text("import torch\ndef f(:\n", encoding="utf-8")
    proc = check(tmp_path, "--format", "json")
    data = json.loads(proc.stdout)
    assert all(item["code"] == "SAN000" for item in data), data
    messages = {item["path"]: item["message"] for item in data}
    for name, (_, reason) in OLD_PYTHON.items():
        assert messages[name].startswith(f"cannot parse: {reason}"), messages[name]
    assert messages["broken.py"].startswith("syntax error:")
    sarif = json.loads(check(tmp_path, "--format", "sarif").stdout)
    notes = sarif["runs"][0]["invocations"][0]["toolExecutionNotifications"]
    assert {n["descriptor"]["id"] for n in notes} == {"SAN000"} and len(notes) == 4


def test_form_feeds_in_indentation_parse_as_python_parses_them(tmp_path):
    """Valid Python (CPython restarts the indentation count at a form feed) that libcst alone rejects."""
    source = (
        "import torch\n\f\nclass Trainer:\n    def build(self):\n"
        "\f        return torch.optim.Adam(self.parameters(), lr=1e-3, weight_decay=1e-4)\n"
        "\fopt = torch.optim.Adam(model.parameters(), weight_decay=1e-4)\n"
    )
    compile(source, "ff.py", "exec")
    (tmp_path / "ff.py").write_text(source, encoding="utf-8")
    proc = check(tmp_path, "--format", "json")
    data = json.loads(proc.stdout)
    assert [(d["code"], d["line"], d["column"]) for d in data] == [("SAN504", 5, 17), ("SAN504", 6, 8)], data
    assert all("fix" not in d or d["fix"] is None for d in data)  # positions on those lines are not trusted for edits


def test_a_sibling_module_that_crashes_the_worker_costs_only_itself(tmp_path):
    """train.py's analysis follows `train_one_epoch` into helpers.py, whose parse kills the worker (900
    lambdas under a 2 MB stack). helpers.py gets its line; train.py is checked again without following it."""
    (tmp_path / "train.py").write_text(
        "import torch\nfrom helpers import train_one_epoch\n\n"
        "opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n"
        "for epoch in range(10):\n    train_one_epoch(model, loader, opt)\n",
        encoding="utf-8",
    )
    (tmp_path / "helpers.py").write_text(
        "import torch\n\n\ndef train_one_epoch(model, loader, opt):\n    for x, y in loader:\n"
        "        loss = model(x).sum()\n        loss.backward()\n        opt.step()\n\n\n"
        "f = " + "lambda: " * 900 + "1\n",
        encoding="utf-8",
    )
    proc = check(tmp_path, "-j", "1", stack_kb=2048)
    assert proc.returncode == 1, proc.stderr
    assert_one_san000(proc.stdout, "helpers.py", r"skipped: the checker crashed on this file \(SIGSEGV\)")
    assert [line.split(": ")[1].split()[0] for line in lines_of(proc.stdout, "train.py")] == ["SAN504"], proc.stdout
