"""`torchsanity check` to ruff's conventions, through the real CLI (in-process entry point and real child
processes): notebooks, stdin, rule-code validation, .gitignore, virtualenvs, output formats, noqa, the
cache and its cross-file invalidation, skipping files that cannot hold a finding, and --watch."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from cli_helpers import ADAM_L2, CLEAN, cache_entries, write

ADAM_SAFE = "import torch\nopt = torch.optim.Adam(model.parameters(), lr=1e-3)\n"
PLAIN = "def add(a, b):\n    return a + b\n"


def notebook(*cells: str, markdown_first: bool = True) -> str:
    items = [{"cell_type": "markdown", "metadata": {}, "source": ["# Title\n"]}] if markdown_first else []
    for text in cells:
        items.append({"cell_type": "code", "metadata": {}, "execution_count": None, "outputs": [],
                      "source": text.splitlines(keepends=True)})
    return json.dumps({"cells": items, "metadata": {"kernelspec": {"language": "python", "name": "python3"}},
                       "nbformat": 4, "nbformat_minor": 5})


NB = notebook("%matplotlib inline\nimport torch\n",
              "!pip install tqdm\nopt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)\n")


# ---- notebooks -------------------------------------------------------------------------------------


def test_notebook_cells_are_one_program_with_cell_positions(cli, tmp_path):
    write(tmp_path / "nb.ipynb", NB)
    result = cli("check", "--format", "concise", "nb.ipynb")
    assert result.code == 1, result.out
    assert "nb.ipynb:cell 2:2:7: SAN504" in result.out  # cell 2 uses `torch` imported in cell 1
    data = json.loads(cli("check", "--format", "json", "nb.ipynb").out)
    (finding,) = data
    assert (finding["cell"], finding["cell_index"], finding["line"], finding["column"]) == (2, 2, 2, 7)
    assert finding["notebook_line"] == 4
    sarif = json.loads(cli("check", "--format", "sarif", "nb.ipynb").out)
    props = sarif["runs"][0]["results"][0]["properties"]
    assert props == {"cell": 2, "cellIndex": 2, "cellLine": 2, "cellColumn": 7}


def test_directory_walks_include_notebooks(cli, tmp_path):
    write(tmp_path / "nbs" / "nb.ipynb", NB)
    write(tmp_path / "nbs" / ".ipynb_checkpoints" / "nb-checkpoint.ipynb", NB)
    assert cli("check", "--show-files", ".").out.split() == ["nbs/nb.ipynb"]
    assert "nbs/nb.ipynb:cell 2:2:7: SAN504" in cli("check", "--format", "concise", ".").out


def test_invalid_notebook_is_reported_not_passed(cli, tmp_path):
    write(tmp_path / "bad.ipynb", "{not json")
    result = cli("check", "--format", "concise", "bad.ipynb")
    assert result.code == 1 and re.search(r"^bad\.ipynb:1:1: .*cannot read file: invalid notebook", result.out, re.M)
    assert "All checks passed!" not in result.out


def test_notebook_syntax_error_maps_to_its_cell(cli, tmp_path):
    write(tmp_path / "nb.ipynb", notebook("import torch\n", "x = (\n"))
    out = cli("check", "--format", "concise", "nb.ipynb").out
    assert "nb.ipynb:cell 2:" in out and "syntax error" in out


# ---- stdin, missing paths, unknown codes -----------------------------------------------------------


def test_stdin_with_a_filename(cli, tmp_path, monkeypatch):
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nper-file-ignores = { "legacy/*" = ["SAN504"] }\n')
    monkeypatch.setattr(sys, "stdin", io.StringIO(ADAM_L2))
    result = cli("check", "--format", "concise", "-", "--stdin-filename", "src/train.py")
    assert result.code == 1 and "src/train.py:2:7: SAN504" in result.out
    monkeypatch.setattr(sys, "stdin", io.StringIO(ADAM_L2))
    assert cli("check", "-", "--stdin-filename", "legacy/old.py").code == 0  # the config applies by name
    monkeypatch.setattr(sys, "stdin", io.StringIO(ADAM_L2))
    assert "-:2:7: SAN504" in cli("check", "--format", "concise", "-").out


def test_stdin_through_a_real_process(cli_process, tmp_path):
    proc = subprocess.run([sys.executable, "-m", "torchsanity.server", "check", "--format", "json", "-"],
                          input=ADAM_L2, capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert [d["code"] for d in json.loads(proc.stdout)] == ["SAN504"]


def test_stdin_cannot_be_fixed_in_place(cli, tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(ADAM_L2))
    result = cli("check", "--fix", "-")
    assert result.code == 2 and "stdin" in result.err


def test_missing_path_is_an_error_and_never_all_passed(cli, tmp_path):
    write(tmp_path / "ok.py", CLEAN)
    result = cli("check", "--format", "concise", "ok.py", "missing.py")
    assert result.code == 2 and "missing.py: no such file" in result.err
    assert "All checks passed!" not in result.out and "1 path could not be read" in result.out


@pytest.mark.parametrize("args, suggestion", [
    (["--select", "SAN999"], "SAN901"), (["--ignore", "SAN5O4"], "SAN504"), (["--extend-select", "E501"], "SAN501"),
])
def test_unknown_codes_on_the_command_line(cli, tmp_path, args, suggestion):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", *args, "train.py")
    assert result.code == 2 and f"did you mean {suggestion}" in result.err, result.err
    assert "All checks passed!" not in result.out


@pytest.mark.parametrize("table", [
    'select = ["SAN5O4"]', 'ignore = ["SAN999"]', 'extend-select = ["SAN99"]',
    'per-file-ignores = { "a/*" = ["SAN9999"] }', 'severity = { SAN5 = "info" }',
])
def test_unknown_codes_in_the_configuration(cli, tmp_path, table):
    write(tmp_path / "pyproject.toml", f"[tool.torchsanity]\n{table}\n")
    write(tmp_path / "train.py", ADAM_L2)
    result = cli("check", "train.py")
    assert result.code == 2 and "did you mean SAN" in result.err, result.err
    assert "Traceback" not in result.err


def test_prefixes_and_all_are_valid(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    assert cli("check", "--select", "SAN5,ALL", "train.py").code == 1
    assert cli("check", "--select", "SAN1", "--extend-select", "SAN504", "train.py").code == 1


# ---- discovery: .gitignore, virtualenvs, exclude, config -----------------------------------------------


def test_gitignore_nested_and_negation(cli, tmp_path):
    write(tmp_path / ".gitignore", "generated/\n*_tmp.py\n")
    write(tmp_path / "pkg" / ".gitignore", "old_*.py\n!old_keep.py\n")
    write(tmp_path / "pkg" / ".ignore", "scratch.py\n")
    for name in ("train.py", "generated/g.py", "x_tmp.py", "pkg/old_a.py", "pkg/old_keep.py", "pkg/scratch.py",
                 "pkg/sub/old_b.py"):
        write(tmp_path / name, ADAM_L2)
    shown = cli("check", "--show-files", ".").out.split()
    assert shown == ["pkg/old_keep.py", "train.py"]
    everything = cli("check", "--show-files", "--no-respect-gitignore", ".").out.split()
    assert len(everything) == 7
    assert cli("check", "--show-files", "pkg/old_a.py").out.split() == ["pkg/old_a.py"]  # named: checked
    assert cli("check", "--show-files", "--force-exclude", "pkg/old_a.py").out.split() == []


def test_gitignore_of_the_repository_above_the_walked_folder(cli, tmp_path):
    (tmp_path / ".git").mkdir()
    write(tmp_path / ".gitignore", "ignored_*.py\n")
    write(tmp_path / "src" / "ignored_a.py", ADAM_L2)
    write(tmp_path / "src" / "train.py", ADAM_L2)
    assert cli("check", "--show-files", "src").out.split() == ["src/train.py"]


def test_any_virtualenv_is_skipped(cli, tmp_path):
    write(tmp_path / "myenv" / "pyvenv.cfg", "home = /usr/bin\n")
    write(tmp_path / "myenv" / "lib" / "site.py", ADAM_L2)
    write(tmp_path / "train.py", ADAM_L2)
    assert cli("check", "--show-files", ".").out.split() == ["train.py"]


def test_extend_exclude_and_config_file(cli, tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.torchsanity]\nextend-exclude = ["legacy/"]\n')
    write(tmp_path / "legacy" / "a.py", ADAM_L2)
    write(tmp_path / "exp" / "b.py", ADAM_L2)
    write(tmp_path / "train.py", ADAM_L2)
    assert cli("check", "--show-files", ".").out.split() == ["exp/b.py", "train.py"]
    assert cli("check", "--show-files", "--extend-exclude", "exp/", ".").out.split() == ["train.py"]
    write(tmp_path / "conf" / "torchsanity.toml", 'ignore = ["SAN504"]\n')
    assert cli("check", "--config", "conf/torchsanity.toml", "train.py").code == 0
    missing = cli("check", "--config", "conf/nope.toml", "train.py")
    assert missing.code == 2 and "nope.toml" in missing.err and "Traceback" not in missing.err
    settings = cli("check", "--show-settings", "--config", "conf/torchsanity.toml", "train.py").out
    assert re.search(r"^ignore += SAN504$", settings, re.M), settings
    assert re.search(r"^respect-gitignore += true$", settings, re.M), settings


# ---- output formats ---------------------------------------------------------------------------------


def test_full_format_shows_the_line_a_caret_and_the_fix(cli, tmp_path):
    write(tmp_path / "train.py", "import torch\nx = torch.zeros(3)\nx.cuda()\n")
    out = cli("check", "--format", "full", "train.py").out
    lines = out.splitlines()
    i = next(i for i, line in enumerate(lines) if line.startswith("train.py:3:1: SAN901"))
    assert lines[i + 2] == "3 | x.cuda()"
    assert lines[i + 3] == "  | ^^^^^^^^"
    assert lines[i + 4].startswith("  = help: Assign the result to x")
    assert "\x1b[" not in out  # no colour when not a terminal


def test_full_format_colour_on_request(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    assert "\x1b[" in cli("check", "--format", "full", "--color", "always", "train.py").out


def test_default_format_is_concise_when_piped(cli_process, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    result = cli_process("check", "train.py")
    assert result.out.splitlines()[0].startswith("train.py:2:7: SAN504")


def test_json_lines_gitlab_junit(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    write(tmp_path / "broken.py", "def f(:\n")
    lines = cli("check", "--format", "json-lines", ".").out.splitlines()
    assert {json.loads(line)["name"] for line in lines} == {"syntax-error", "adam-l2-weight-decay"}
    gitlab = json.loads(cli("check", "--format", "gitlab", ".").out)
    issue = next(i for i in gitlab if i["check_name"] == "SAN504")
    assert issue["location"] == {"path": "train.py", "lines": {"begin": 2, "end": 2}}
    assert len({i["fingerprint"] for i in gitlab}) == len(gitlab) == 2
    root = ET.fromstring(cli("check", "--format", "junit", ".").out)
    assert root.get("failures") == "2"
    cases = root.findall(".//testcase")
    assert {c.get("name") for c in cases} == {"SAN504 train.py:2:7", "syntax-error broken.py:1:7"} or len(cases) == 2
    write(tmp_path / "broken.py", CLEAN)
    write(tmp_path / "train.py", CLEAN)
    assert ET.fromstring(cli("check", "--format", "junit", ".").out).get("failures") == "0"


# ---- noqa, fixes and exit codes -------------------------------------------------------------------


def test_unused_noqa_is_reported_and_fixed(cli, tmp_path):
    path = write(tmp_path / "train.py", ADAM_SAFE.replace("1e-3)\n", "1e-3)  # noqa: SAN504\n"))
    result = cli("check", "--format", "concise", "train.py")
    assert result.code == 1
    assert re.search(r"^train\.py:2:54: SAN100 (\[\*\] )?unused noqa directive: SAN504", result.out, re.M), result.out
    assert cli("check", "--fix", "train.py").code == 0
    assert path.read_text(encoding="utf-8") == ADAM_SAFE
    write(tmp_path / "used.py", ADAM_L2.replace("1e-4)\n", "1e-4)  # noqa: SAN504\n"))
    assert cli("check", "used.py").code == 0  # a directive that suppresses is used
    assert cli("check", "--ignore", "SAN100", "train.py").code == 0


def test_add_noqa_silences_every_finding(cli, tmp_path):
    path = write(tmp_path / "train.py", ADAM_L2 + "x = torch.zeros(3)\nx.cuda()\n")
    result = cli("check", "--add-noqa", "train.py")
    assert result.code == 0 and "Added 2 noqa directives." in result.err
    text = path.read_text(encoding="utf-8")
    assert "weight_decay=1e-4)  # noqa: SAN504\n" in text and "x.cuda()  # noqa: SAN901\n" in text
    assert cli("check", "train.py").code == 0


def test_exit_non_zero_on_fix_and_show_fixes(cli, tmp_path):
    write(tmp_path / "train.py", "import torch\nx = torch.zeros(3)\nx.cuda()\n")
    result = cli("check", "--fix", "--show-fixes", "--exit-non-zero-on-fix", "train.py")
    assert result.code == 1
    assert "Fixed 1 problem:\n- train.py:\n    1 × SAN901 (discarded-tensor-move)\n" in result.out, result.out
    assert cli("check", "--fix", "--exit-non-zero-on-fix", "train.py").code == 0  # nothing left to change


# ---- the cache --------------------------------------------------------------------------------------

SIBLING_SOFTMAX = ("import torch.nn as nn\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                   "        self.body = nn.Sequential(nn.Linear(4, 3), nn.Softmax(dim=1))\n\n"
                   "    def forward(self, x):\n        return self.body(x)\n")
IMPORTER = ("import torch\nimport torch.nn as nn\nfrom model import Net\n\nmodel = Net()\ncriterion = nn.CrossEntropyLoss()\n"
            "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\ntorch.manual_seed(0)\n"
            "for x, y in loader:\n    optimizer.zero_grad()\n    loss = criterion(model(x), y)\n"
            "    loss.backward()\n    optimizer.step()\n")


def _json(cli, *args):
    return json.loads(cli("check", "--format", "json", *args).out)


def test_cache_results_equal_uncached_and_gitignore_inside(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    write(tmp_path / "nb.ipynb", NB)
    write(tmp_path / "util.py", PLAIN)
    write(tmp_path / "broken.py", "def f(:\n")
    first = _json(cli, ".")
    assert (tmp_path / ".torchsanity_cache" / ".gitignore").read_text().strip().endswith("*")
    (index,) = (tmp_path / ".torchsanity_cache").glob("index-*")  # one index, in a few shards, not a file per source
    assert 1 <= len(list(index.glob("*.json"))) <= 4
    assert sorted(Path(e["path"]).name for e in cache_entries(tmp_path / ".torchsanity_cache")) == [
        "broken.py", "nb.ipynb", "train.py", "util.py"]
    assert _json(cli, ".") == first == _json(cli, "--no-cache", ".")
    stats = cli("check", "--statistics", ".").out
    assert "4 files checked: 1 could not hold a finding (not parsed), 4 unchanged (from the cache)." in stats
    assert _json(cli, "--cache-dir", "elsewhere", ".") == first
    assert len(cache_entries(tmp_path / "elsewhere")) == 4


def test_a_result_skipped_for_its_time_budget_is_not_cached(cli, tmp_path):
    write(tmp_path / "train.py", ADAM_L2)
    assert "skipped" in cli("check", "--format", "concise", "--file-timeout", "0.001", "train.py").out
    assert "train.py:2:7: SAN504" in cli("check", "--format", "concise", "train.py").out


@pytest.mark.parametrize("jobs", ["1", "2"])  # one process, and two workers sharing the files
def test_editing_a_sibling_module_invalidates_the_importer(cli, tmp_path, jobs):
    write(tmp_path / "model.py", SIBLING_SOFTMAX)
    write(tmp_path / "train.py", IMPORTER)
    for i in range(14):
        write(tmp_path / f"filler{i:02}.py", CLEAN)
    codes = {(d["path"], d["code"]) for d in _json(cli, "-j", jobs, ".")}
    assert ("train.py", "SAN601") in codes
    write(tmp_path / "model.py", SIBLING_SOFTMAX.replace(", nn.Softmax(dim=1)", ""))
    assert ("train.py", "SAN601") not in {(d["path"], d["code"]) for d in _json(cli, "-j", jobs, ".")}
    write(tmp_path / "model.py", SIBLING_SOFTMAX)
    assert ("train.py", "SAN601") in {(d["path"], d["code"]) for d in _json(cli, "-j", jobs, ".")}


def test_a_new_sibling_module_invalidates_a_skipped_importer(cli, tmp_path):
    write(tmp_path / "main.py", "from helpers import run\nfor epoch in range(3):\n    run(net, opt, data)\n")
    assert "1 could not hold a finding" in cli("check", "--statistics", "main.py").out
    write(tmp_path / "helpers.py", "def run(net, opt, data):\n    for x, y in data:\n        opt.zero_grad()\n"
                                   "        net(x).sum().backward()\n        opt.step()\n")
    assert "0 could not hold a finding" in cli("check", "--statistics", "main.py").out


def test_concurrent_runs_share_the_cache(tmp_path):
    for i in range(30):
        write(tmp_path / f"m{i}.py", ADAM_L2 if i % 2 else CLEAN)
    command = [sys.executable, "-m", "torchsanity.server", "check", "--format", "json", "-j", "1", "."]
    procs = [subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(4)]
    outputs = [p.communicate(timeout=240) for p in procs]
    assert all(p.returncode == 1 for p in procs), [e for _, e in outputs]
    results = [json.loads(out) for out, _ in outputs]
    assert all(r == results[0] for r in results) and len(results[0]) == 15
    assert not list((tmp_path / ".torchsanity_cache").rglob(".tmp-*"))
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=240)
    assert json.loads(again.stdout) == results[0]


# ---- skipping files that cannot hold a finding ------------------------------------------------------


def test_files_that_cannot_hold_a_finding_are_not_parsed(cli, tmp_path):
    write(tmp_path / "util.py", PLAIN)
    write(tmp_path / "strings.py", "NAMES = ['a', 'b']\n")
    write(tmp_path / "train.py", ADAM_L2)
    stats = cli("check", "--statistics", "--no-cache", ".").out
    assert "3 files checked: 2 could not hold a finding (not parsed)" in stats


def test_skipping_never_hides_a_finding_on_the_corpus(cli):
    """Every rule example and corpus script: the files judged unable to hold a finding have none."""
    from torchsanity.analyzers import all_rules, analyze_source
    from torchsanity.analyzers.relevance import text_may_hold_finding

    texts = [example if isinstance(example, str) else example.code
             for rule in all_rules() for example in list(rule.VALID) + list(rule.INVALID)]
    corpus = Path(__file__).parent.parent / "analyzers" / "corpus"
    texts += [p.read_text(encoding="utf-8") for p in sorted(corpus.rglob("*.py"))]
    skipped = [t for t in texts if not text_may_hold_finding(t)]
    for text in skipped:
        assert analyze_source(text).findings == [], text
    assert all(text_may_hold_finding(e.code) for rule in all_rules() for e in rule.INVALID)


# ---- --watch ----------------------------------------------------------------------------------------


def test_watch_rechecks_on_change(tmp_path):
    path = write(tmp_path / "train.py", CLEAN)
    proc = subprocess.Popen([sys.executable, "-m", "torchsanity.server", "check", "--watch", "--format", "concise", "."],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"))
    try:
        assert _read_until(proc, "All checks passed!")
        time.sleep(0.5)
        path.write_text(ADAM_L2, encoding="utf-8")
        assert _read_until(proc, "train.py:2:7: SAN504")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _read_until(proc, needle: str, timeout: float = 90) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return False
        if needle in line:
            return True
    return False


# ---- on a terminal: progress and the full format ------------------------------------------------------


def _run_on_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the CLI with stdout and stderr on a pseudo-terminal; (exit status, everything it wrote)."""
    import pty

    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "torchsanity.server", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=terminal, stderr=terminal, env=dict(os.environ, COLUMNS="120", TERM="xterm"))
    os.close(terminal)
    chunks = []
    while True:
        try:
            data = os.read(controller, 65536)
        except OSError:  # the terminal closed: the process ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(controller)
    return proc.wait(timeout=120), b"".join(chunks).decode("utf-8", "replace")


def test_progress_and_full_format_on_a_terminal(tmp_path):
    for i in range(25):
        write(tmp_path / f"m{i:02}.py", SAFE_MOVE if i == 0 else CLEAN)
    code, out = _run_on_terminal(["check", "--no-cache", "-j", "1", "."], tmp_path)
    assert code == 1, out
    assert "Checking" in out and "/25" in out  # the rich progress bar with the file count
    assert "x.cuda()" in out and "^^^^" in out  # the full format is the default on a terminal
    code, out = _run_on_terminal(["check", "-j", "1", "m01.py"], tmp_path)
    assert code == 0 and "Checking" not in out  # a short run shows no progress


SAFE_MOVE = "import torch\nx = torch.zeros(3)\nx.cuda()\n"


def test_fix_and_diff_on_a_notebook_keep_magics_outputs_and_layout(cli, tmp_path):
    cells = [{"cell_type": "markdown", "metadata": {}, "source": ["# Title"]},
             {"cell_type": "code", "metadata": {}, "execution_count": 1, "outputs": [{"output_type": "stream",
              "name": "stdout", "text": ["hi\n"]}], "source": ["%matplotlib inline\n", "import torch\n", "x = torch.zeros(3)"]},
             {"cell_type": "code", "metadata": {}, "execution_count": 2, "outputs": [],
              "source": ["!pip install tqdm\n", "x.cuda()\n", "for i in range(3):\n", "    %time x.cpu()"]}]
    raw = json.dumps({"cells": cells, "metadata": {"kernelspec": {"language": "python"}}, "nbformat": 4,
                      "nbformat_minor": 5}, indent=2)
    path = write(tmp_path / "nb.ipynb", raw)
    diff = cli("check", "--diff", "nb.ipynb")
    assert diff.code == 1
    assert [line[0] + line[1:].strip() for line in diff.out.splitlines() if line[:1] in "+-" and "cuda" in line] == [
        '-"x.cuda()\\n",', '+"x = x.cuda()\\n",']
    assert path.read_text(encoding="utf-8") == raw
    result = cli("check", "--fix", "nb.ipynb")
    assert result.code == 0 and "1 fixed, 0 remaining" in result.out
    fixed = json.loads(path.read_text(encoding="utf-8"))
    assert fixed["cells"][2]["source"] == ["!pip install tqdm\n", "x = x.cuda()\n", "for i in range(3):\n", "    %time x.cpu()"]
    assert fixed["cells"][:2] == cells[:2] and fixed["metadata"] == {"kernelspec": {"language": "python"}}
    assert path.read_text(encoding="utf-8") == raw.replace('"x.cuda()\\n"', '"x = x.cuda()\\n"')  # same layout
