"""`torchsanity check DIR` judges a function with its callers in other files: the workers summarise each
file for the project index next to its analysis, the cache keeps the summaries, and the parent settles
the questions about callers with every summary in (editing a caller re-judges the callee)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from cli_helpers import cache_entries, write

PROJECTS = Path(__file__).resolve().parents[1] / "analyzers"
NO_GRAD_CALLER = PROJECTS / "projects" / "eval_called_under_no_grad"
LIBRARY = PROJECTS / "projects_callers" / "library_eval"


def findings(cli, folder: Path, *extra: str) -> set[tuple[str, int, str]]:
    result = cli("check", "--no-config", "--select", "SAN202", "--format", "json", *extra, ".", cwd=folder)
    assert result.code in (0, 1), result.err
    return {(d["path"], d["line"], d["code"]) for d in json.loads(result.out)}


def copy(folder: Path, tmp_path: Path) -> Path:
    target = tmp_path / folder.name
    shutil.copytree(folder, target)
    return target


def test_evaluate_called_under_no_grad_from_another_module_is_fine(cli, tmp_path):
    assert findings(cli, copy(NO_GRAD_CALLER, tmp_path)) == set()


def test_a_library_evaluate_nothing_calls_is_reported(cli, tmp_path):
    assert findings(cli, copy(LIBRARY, tmp_path)) == {("metrics.py", 6, "SAN202")}


def test_editing_the_caller_re_judges_the_callee_from_the_cache(cli, tmp_path):
    folder = copy(NO_GRAD_CALLER, tmp_path)
    assert findings(cli, folder) == set()
    main = folder / "main.py"
    main.write_text(main.read_text(encoding="utf-8").replace("@torch.no_grad()\n", ""), encoding="utf-8")
    result = cli("check", "--no-config", "--select", "SAN202", "--statistics", ".", cwd=folder)
    assert "SAN202" in result.out and "1 unchanged (from the cache)" in result.out  # engine.py: not analysed again
    assert findings(cli, folder) == {("engine.py", 6, "SAN202")}  # both from the cache now, settled again


def test_the_cache_keeps_each_file_summary_and_the_questions(cli, tmp_path):
    folder = copy(NO_GRAD_CALLER, tmp_path)
    first = findings(cli, folder)
    entries = cache_entries(folder / ".torchsanity_cache")
    summaries = [e["summary"] for e in entries]
    assert len(entries) == 2 and all(s is not None for s in summaries)
    assert any("evaluate" in s["functions"] for s in summaries)
    assert any(call[0] == "engine.evaluate" and call[2] == "off" for s in summaries for call in s["calls"])
    assert findings(cli, folder) == first


def test_a_caller_that_is_not_checked_is_still_read(cli, tmp_path):
    """`check engine.py` alone: main.py is read for the index (not analysed), so the answer is that of
    the whole folder."""
    folder = copy(NO_GRAD_CALLER, tmp_path)
    result = cli("check", "--no-config", "--select", "SAN202", "--format", "json", "engine.py", cwd=folder)
    assert json.loads(result.out) == []


def test_a_file_without_callers_in_a_parallel_run(cli, tmp_path):
    """Many files, several workers: questions from every worker are settled in the parent."""
    for i in range(14):
        write(tmp_path / f"m{i:02}.py", "import torch\n\nx = torch.zeros(1)\n")
    shutil.copytree(NO_GRAD_CALLER, tmp_path / "app")
    data = json.loads(cli("check", "--no-config", "--select", "SAN202", "--format", "json", "-j", "2", ".").out)
    assert data == []
