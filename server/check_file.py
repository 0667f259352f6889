"""The analysis of one `torchsanity check` target: a Python file, a notebook or the text read from stdin.

A file whose text (and that of the project modules it imports) cannot hold a finding is not parsed at all
(:mod:`..analyzers.relevance`). Each analysis also says which project files it depended on, so the cache
can invalidate it when a sibling module changes. The engine (libcst) is imported when a target is read or
analysed, not with this module: a run answered from the cache never imports it.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from ..analyzers.findings import FileProblem, FileReport

NOTEBOOK_SUFFIX = ".ipynb"


@dataclass
class Analysis:
    report: FileReport
    dependencies: dict[Path, bool] = field(default_factory=dict)  # project file -> existed
    skipped: bool = False  # not parsed: it cannot hold a finding


def is_notebook(path: str) -> bool:
    return path.lower().endswith(NOTEBOOK_SUFFIX)


def read_target_text(path: str, stdin_text: str | None = None) -> str:
    """The Python text of a target (a notebook's code cells joined); raises OSError / ValueError /
    UnicodeDecodeError / NotebookError when it cannot be read."""
    from ..analyzers.notebook import parse_notebook
    from ..analyzers.source_text import read_source

    if is_notebook(path):
        raw = stdin_text if stdin_text is not None else Path(path).read_text(encoding="utf-8")
        notebook = parse_notebook(raw)
        return notebook.text if notebook.is_python else ""
    if stdin_text is not None:
        return stdin_text
    return read_source(path)


def _unreadable(path: str, error: Exception) -> FileReport:
    from ..analyzers.engine import unreadable_problem
    from ..analyzers.notebook import NotebookError

    if isinstance(error, NotebookError):
        return FileReport(path=path, problems=[FileProblem(path, "unreadable", f"cannot read file: invalid notebook: {error}")])
    return FileReport(path=path, problems=[unreadable_problem(path, error)])


def _compiles(text: str) -> bool:
    """Whether CPython parses ``text`` (a file that does not is analysed, so its syntax error is reported)."""
    try:
        compile(text, "<check>", "exec", ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def analyze_target(path: str, config, project, stdin_text: str | None = None) -> Analysis:
    """Read and analyse one target; never raises on user input."""
    from ..analyzers.engine import analyze_source
    from ..analyzers.relevance import may_hold_finding

    try:
        text = read_target_text(path, stdin_text)
    except (OSError, UnicodeDecodeError, ValueError, SyntaxError) as error:  # NotebookError is a ValueError
        return Analysis(_unreadable(path, error))
    relevant, looked = may_hold_finding(text, path, project)
    if not relevant and _compiles(text):
        return Analysis(FileReport(path=path), looked, skipped=True)
    report = analyze_source(text, path, config, project)
    dependencies = project.dependencies(path) if project is not None else {}
    return Analysis(report, dependencies)


def fix_notebook(target, mode: str, project):
    """``--fix`` / ``--diff`` on a notebook: fix its cells as one program and write the cells back into the
    notebook's JSON (outputs and metadata untouched); the report is that of the notebook as it is after."""
    from ..analyzers import fix_source
    from ..analyzers.notebook import mark_notebook
    from .check_result import FileResult
    from .fix_output import unified_diff, write_fixed_for

    path = target.path
    before = analyze_target(path, target.config, project)
    if before.skipped or not any(f.fix is not None for f in before.report.findings):
        return FileResult(before.report, dependencies=before.dependencies, skipped=before.skipped)
    raw = Path(path).read_text(encoding="utf-8")
    marked = mark_notebook(raw)
    fixed_text, _ = fix_source(marked.text, path, target.config, project)
    new_raw = marked.write_back(fixed_text) if fixed_text != marked.text else None
    if new_raw is None or new_raw == raw:
        return FileResult(before.report, dependencies=before.dependencies)
    after = analyze_target(path, target.config, project, stdin_text=new_raw)
    fixed = max(0, len(before.report.findings) - len(after.report.findings))
    if mode == "diff":
        return FileResult(before.report, fixed=fixed, diff=unified_diff(raw, new_raw, path))
    try:
        write_fixed_for(path, new_raw, target.config)
    except (OSError, UnicodeEncodeError) as error:
        return FileResult(before.report, write_error=f"cannot write fixes: {error}")
    return FileResult(after.report, fixed=fixed)
