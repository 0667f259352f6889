"""Output formats of `torchsanity check`: full and concise text (ruff-like), JSON, JSON Lines, SARIF 2.1.0,
GitHub annotations, GitLab Code Quality and JUnit XML.

Every formatter takes the list of :class:`FileReport` (already sorted by path) and returns the text to
print. Lines and columns are 1-based everywhere (the engine's columns are 0-based code points). In a
notebook, positions are those within the cell (``path:cell 3:2:5``), and the machine formats carry the
cell's number, its index among the notebook's cells and the line in the cell.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Callable, Iterable, Sequence

from ..analyzers.findings import FileProblem, FileReport, Finding, Severity

FORMATS = ("full", "concise", "text", "json", "json-lines", "sarif", "github", "gitlab", "junit")


@dataclass(frozen=True)
class Summary:
    """What `--fix` did, for the closing line of the text format, and how to show positions."""

    fixed: int = 0
    fixing: bool = False
    quiet: bool = False  # findings only: no closing summary, nothing at all when clean
    unsafe_fixes: bool = False  # --unsafe-fixes: unsafe fixes count as fixable
    notebooks: dict = field(default_factory=dict)  # path -> analyzers.notebook.Notebook
    source_of: Callable[[str], str | None] | None = None  # the text analysed for a path (full format)
    color: bool = False
    show_fixes: bool = False
    unread: int = 0  # inputs that could not be read at all (missing paths): never "All checks passed!"
    rules: Callable[[], list[dict]] | None = None  # SARIF's rule entries (from the cache); else sarif_rules


# ---- positions in notebooks ------------------------------------------------------------------------


def cell_position(summary: Summary, path: str, line: int):
    """(cell, line within the cell) when ``path`` is a notebook, else None."""
    notebook = summary.notebooks.get(path)
    return notebook.locate(line) if notebook is not None else None


def where(summary: Summary, path: str, line: int, column: int) -> str:
    """``path:line:col`` (1-based column), or ``path:cell N:line:col`` in a notebook."""
    located = cell_position(summary, path, line)
    if located is not None:
        cell, cell_line = located
        return f"{path}:cell {cell.number}:{cell_line}:{column}"
    return f"{path}:{line}:{column}"


def _cell_fields(summary: Summary, data: dict) -> dict:
    """``data`` (a finding's JSON) with notebook positions made cell-relative, and the cell metadata."""
    start = cell_position(summary, data["path"], data["line"])
    if start is None:
        return data
    cell, cell_line = start
    end = cell_position(summary, data["path"], data["end_line"])
    data.update(cell=cell.number, cell_index=cell.index, notebook_line=data["line"], line=cell_line,
                end_line=end[1] if end is not None and end[0] is cell else cell_line)
    if "fix" in data:
        for edit in data["fix"]["edits"]:
            located = cell_position(summary, data["path"], edit["line"])
            if located is not None:
                edit.update(cell=located[0].number, notebook_line=edit["line"], line=located[1],
                            end_line=located[1] + edit["end_line"] - edit["line"])
    return data


def _findings(reports: Sequence[FileReport]) -> list[Finding]:
    return [f for report in reports for f in report.findings]


def _problems(reports: Sequence[FileReport]) -> list[FileProblem]:
    return [p for report in reports for p in report.problems]


def _fixable(finding: Finding, unsafe: bool = True) -> bool:
    """Whether ``finding`` has a fix (with ``unsafe=False``: one that `--fix` applies)."""
    return finding.fix is not None and (unsafe or finding.fix.is_safe)


# ---- text ----------------------------------------------------------------------------------------


def problem_line(problem: FileProblem, summary: Summary = Summary()) -> str:
    return f"{where(summary, problem.path, problem.start.line, problem.start.column + 1)}: {problem.code} {problem.message}"


def finding_line(finding: Finding, summary: Summary = Summary()) -> str:
    marker = "[*] " if _fixable(finding, summary.unsafe_fixes) else ""  # ruff's mark: `--fix` fixes it
    return f"{where(summary, finding.path, finding.start.line, finding.start.column + 1)}: {finding.code} {marker}{finding.message}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _closing(reports: Sequence[FileReport], summary: Summary) -> list[str]:
    findings = _findings(reports)
    problems = _problems(reports)
    fixable = sum(1 for f in findings if _fixable(f, summary.unsafe_fixes))
    hidden = sum(1 for f in findings if _fixable(f)) - fixable
    if summary.quiet:
        return []
    if findings or problems or summary.fixed or summary.unread:
        parts = []
        if summary.fixing:
            total = len(findings) + summary.fixed
            parts.append(f"Found {_plural(total, 'problem')} ({summary.fixed} fixed, {len(findings)} remaining).")
        else:
            text = f"Found {_plural(len(findings), 'problem')}."
            note = f"{_plural(hidden, 'hidden fix').replace('fixs', 'fixes')} can be enabled with the `--unsafe-fixes` option"
            if fixable:
                text += f"\n[*] {fixable} fixable with `torchsanity check --fix`" + (f" ({note})." if hidden else ".")
            elif hidden:
                text += f"\nNo fixes available ({note})."
            parts.append(text)
        if problems:
            parts.append(f"{_plural(len({p.path for p in problems}), 'file')} could not be fully checked.")
        if summary.unread:
            parts.append(f"{_plural(summary.unread, 'path')} could not be read.")
        return parts
    return ["All checks passed!"]


def format_text(reports: Sequence[FileReport], summary: Summary = Summary(), show_source: bool = False) -> str:
    """The concise format: one line per finding, then the summary."""
    lines: list[str] = []
    for report in reports:
        for problem in report.problems:
            lines.append(problem_line(problem, summary))
        for finding in report.findings:
            lines.append(finding_line(finding, summary))
    lines.extend(_closing(reports, summary))
    return "\n".join(lines) + "\n" if lines else ""


def format_full(reports: Sequence[FileReport], summary: Summary = Summary()) -> str:
    """ruff's ``full`` format: each finding with its source line, a caret under the range, and the fix."""
    from io import StringIO

    from rich.console import Console
    from rich.text import Text

    buffer = StringIO()
    console = Console(file=buffer, force_terminal=summary.color, no_color=not summary.color, width=10_000,
                      highlight=False, soft_wrap=True)
    for report in reports:
        for problem in report.problems:
            console.print(Text(problem_line(problem, summary), style="bold red"))
        lines = None
        for finding in report.findings:
            head = Text()
            head.append(where(summary, finding.path, finding.start.line, finding.start.column + 1), style="bold")
            head.append(": ")
            head.append(finding.code, style="bold red")
            head.append(" [*] " if _fixable(finding, summary.unsafe_fixes) else " ", style="cyan")
            head.append(finding.message)
            console.print(head)
            if lines is None:
                text = summary.source_of(report.path) if summary.source_of is not None else None
                lines = text.splitlines() if text is not None else []
            if 0 < finding.start.line <= len(lines):
                located = cell_position(summary, finding.path, finding.start.line)
                number = located[1] if located is not None else finding.start.line
                source = lines[finding.start.line - 1].expandtabs(1)
                width = len(str(number))
                end = finding.end.column if finding.end.line == finding.start.line else len(source)
                carets = max(1, end - finding.start.column)
                console.print(Text(f"{' ' * width} |", style="blue"))
                gutter = Text(f"{number} | ", style="blue")
                console.print(gutter + Text(source))
                marker = Text(f"{' ' * width} | ", style="blue")
                marker.append(" " * finding.start.column + "^" * carets, style="bold red")
                console.print(marker)
                if finding.fix is not None:
                    console.print(Text(f"{' ' * width} = help: {finding.fix.description}", style="cyan"))
            console.print()
    for part in _closing(reports, summary):
        console.print(part)
    return buffer.getvalue()


def format_fixes(results) -> str:
    """``--show-fixes``: what `--fix` changed, per file and code (as ruff lists it)."""
    from ..analyzers import get_rule

    changed = [r for r in results if r.fixed]
    if not changed:
        return ""
    total = sum(r.fixed for r in changed)
    lines = ["", f"Fixed {_plural(total, 'problem')}:"]
    for result in sorted(changed, key=lambda r: r.report.path):
        lines.append(f"- {result.report.path}:")
        for code, count in sorted((result.fixed_codes or {}).items()):
            rule = get_rule(code)
            lines.append(f"    {count} × {code} ({rule.name if rule else code})")
    return "\n".join(lines) + "\n"


# ---- statistics ------------------------------------------------------------------------------------


def statistics(reports: Sequence[FileReport]) -> list[dict]:
    counts: Counter[str] = Counter()
    fixable: Counter[str] = Counter()
    names: dict[str, str] = {}
    for finding in _findings(reports):
        counts[finding.code] += 1
        fixable[finding.code] += _fixable(finding)
        names[finding.code] = finding.name
    for problem in _problems(reports):
        counts[problem.kind] += 1
        names[problem.kind] = problem.kind
    return [
        {"code": code, "name": names[code], "count": count, "fixable": fixable.get(code, 0)}
        for code, count in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]


def format_statistics(reports: Sequence[FileReport], output_format: str = "text") -> str:
    rows = statistics(reports)
    if output_format == "json":
        return json.dumps(rows, indent=2) + "\n"
    if not rows:
        return "All checks passed!\n"
    width = max(len(str(r["count"])) for r in rows)
    code_width = max(len(r["code"]) for r in rows)
    out = []
    for row in rows:
        marker = "[*]" if row["fixable"] == row["count"] else "[-]" if row["fixable"] else "   "
        out.append(f"{row['count']:>{width}}\t{row['code']:<{code_width}}\t{marker} {row['name']}")
    total = sum(r["count"] for r in rows)
    out.append(f"Found {_plural(total, 'problem')}.")
    return "\n".join(out) + "\n"


# ---- JSON ------------------------------------------------------------------------------------------


def problem_json(problem: FileProblem) -> dict:
    """A problem in the shape of a finding (``code`` SAN000), so a consumer sees syntax errors too."""
    return {
        "path": problem.path,
        "line": problem.start.line,
        "column": problem.start.column + 1,
        "end_line": problem.start.line,
        "end_column": problem.start.column + 1,
        "code": problem.code,
        "name": problem.kind,
        "severity": Severity.ERROR.value,
        "message": problem.message,
    }


def format_json(reports: Sequence[FileReport], summary: Summary = Summary()) -> str:
    return json.dumps(_json_items(reports, summary), indent=2, ensure_ascii=False) + "\n"


def _json_items(reports: Sequence[FileReport], summary: Summary) -> list[dict]:
    items: list[dict] = []
    for report in reports:
        items.extend(_cell_fields(summary, problem_json(p)) for p in report.problems)
        items.extend(_cell_fields(summary, f.to_json()) for f in report.findings)
    return items


def format_json_lines(reports: Sequence[FileReport], summary: Summary = Summary()) -> str:
    return "".join(json.dumps(item, ensure_ascii=False) + "\n" for item in _json_items(reports, summary))


# ---- SARIF 2.1.0 -----------------------------------------------------------------------------------

_SARIF_LEVEL = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "note"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def _uri(path: str) -> str:
    p = PurePath(path)
    if p.is_absolute():
        return Path(path).as_uri()
    return p.as_posix()


def _tool_version() -> str:
    try:
        from importlib.metadata import version

        return version("torchsanity")
    except Exception:  # pragma: no cover - not installed
        return "0.0.0"


def _sarif_region(line: int, column: int, end_line: int, end_column: int) -> dict:
    return {"startLine": line, "startColumn": column, "endLine": end_line, "endColumn": end_column}


def sarif_rules() -> list[dict]:
    """Every rule's entry in the SARIF driver (its page as help), from the rule classes: this imports
    libcst and the rules, so a run answered from the cache takes them from there (``Summary.rules``)."""
    from ..analyzers.registry import all_rules, docs_url

    return [
        {
            "id": rule.code,
            "name": rule.name,
            "shortDescription": {"text": rule.message},
            "fullDescription": {"text": rule.what() or rule.message},
            "help": {"text": rule.docs_markdown(), "markdown": rule.docs_markdown()},
            "helpUri": docs_url(rule.code),
            "defaultConfiguration": {"level": _SARIF_LEVEL.get(rule.severity, "warning")},
        }
        for rule in all_rules()
    ]


def format_sarif(reports: Sequence[FileReport], summary: Summary = Summary()) -> str:
    rules = (summary.rules or sarif_rules)()
    index = {rule["id"]: i for i, rule in enumerate(rules)}
    driver = {
        "name": "torchsanity",
        "informationUri": "https://github.com/torchsanity/torchsanity",
        "version": _tool_version(),
        "rules": rules,
    }
    results = []
    for finding in _findings(reports):
        result = {
            "ruleId": finding.code,
            "level": _SARIF_LEVEL.get(finding.severity, "warning"),
            "message": {"text": finding.message},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(finding.path)},
                        "region": _sarif_region(
                            finding.start.line, finding.start.column + 1, finding.end.line, finding.end.column + 1
                        ),
                    }
                }
            ],
        }
        if finding.code in index:
            result["ruleIndex"] = index[finding.code]
        located = cell_position(summary, finding.path, finding.start.line)
        if located is not None:
            cell, cell_line = located
            result["properties"] = {"cell": cell.number, "cellIndex": cell.index, "cellLine": cell_line,
                                    "cellColumn": finding.start.column + 1}
        if finding.fix is not None:
            result["fixes"] = [
                {
                    "description": {"text": finding.fix.description},
                    "artifactChanges": [
                        {
                            "artifactLocation": {"uri": _uri(finding.path)},
                            "replacements": [
                                {
                                    "deletedRegion": _sarif_region(
                                        e.start.line, e.start.column + 1, e.end.line, e.end.column + 1
                                    ),
                                    "insertedContent": {"text": e.new_text},
                                }
                                for e in finding.fix.edits
                            ],
                        }
                    ],
                }
            ]
        results.append(result)
    problems = _problems(reports)
    notifications = [
        {
            "level": "error",
            "message": {"text": p.message},
            "descriptor": {"id": p.code},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": _uri(p.path)},
                        "region": {"startLine": p.start.line, "startColumn": p.start.column + 1},
                    }
                }
            ],
        }
        for p in problems
    ]
    run = {
        "tool": {"driver": driver},
        "results": results,
        "invocations": [
            {
                "executionSuccessful": not any(p.kind == "internal-error" for p in problems),
                "toolExecutionNotifications": notifications,
            }
        ],
        "columnKind": "unicodeCodePoints",
    }
    return json.dumps({"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}, indent=2, ensure_ascii=False) + "\n"


# ---- GitHub Actions workflow commands --------------------------------------------------------------

_GITHUB_COMMAND = {Severity.ERROR: "error", Severity.WARNING: "warning", Severity.INFO: "notice"}


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def github_line(command: str, path: str, line: int, col: int, title: str, message: str,
                end_line: int | None = None, end_col: int | None = None) -> str:
    props = [f"file={_escape_property(path)}", f"line={line}", f"col={col}"]
    if end_line is not None:
        props.append(f"endLine={end_line}")
    if end_col is not None:
        props.append(f"endColumn={end_col}")
    props.append(f"title={_escape_property(title)}")
    return f"::{command} {','.join(props)}::{_escape_data(message)}"


def format_github(reports: Sequence[FileReport]) -> str:
    out = []
    for report in reports:
        for p in report.problems:
            out.append(github_line("error", p.path, p.start.line, p.start.column + 1, p.code, p.message))
        for f in report.findings:
            out.append(
                github_line(
                    _GITHUB_COMMAND.get(f.severity, "warning"), f.path, f.start.line, f.start.column + 1, f.code,
                    f.message,
                )
            )
    return "\n".join(out) + ("\n" if out else "")


# ---- GitLab Code Quality ---------------------------------------------------------------------------

_GITLAB_SEVERITY = {Severity.ERROR: "major", Severity.WARNING: "minor", Severity.INFO: "info"}


def format_gitlab(reports: Sequence[FileReport], summary: Summary = Summary()) -> str:
    """GitLab's Code Quality report (a JSON list of CodeClimate issues), as ruff writes it."""
    items = []
    for report in reports:
        entries = [(p.code, p.message, p.start.line, p.start.line, Severity.ERROR) for p in report.problems]
        entries += [(f.code, f.message, f.start.line, f.end.line, f.severity) for f in report.findings]
        for check, message, line, end_line, severity in entries:
            fingerprint = hashlib.sha256(f"{report.path}\0{check}\0{line}\0{message}".encode()).hexdigest()
            items.append({
                "description": f"{check}: {message}",
                "check_name": check,
                "fingerprint": fingerprint,
                "severity": _GITLAB_SEVERITY.get(severity, "minor"),
                "location": {"path": report.path, "lines": {"begin": line, "end": end_line}},
            })
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


# ---- JUnit XML -------------------------------------------------------------------------------------


def format_junit(reports: Sequence[FileReport], summary: Summary = Summary()) -> str:
    """JUnit XML: one test suite per file with findings, one failed test case per finding."""
    from xml.sax.saxutils import escape, quoteattr  # imports urllib: only when asked for

    failures = sum(len(r.findings) + len(r.problems) for r in reports)
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           f'<testsuites name="torchsanity" tests="{max(failures, 1)}" failures="{failures}" errors="0">']
    for report in reports:
        entries = [(p.code, p.message, p.start.line, p.start.column) for p in report.problems]
        entries += [(f.code, f.message, f.start.line, f.start.column) for f in report.findings]
        if not entries:
            continue
        out.append(f'  <testsuite name={quoteattr(report.path)} tests="{len(entries)}" failures="{len(entries)}" errors="0">')
        for code, message, line, column in entries:
            position = where(summary, report.path, line, column + 1)
            out.append(f'    <testcase name={quoteattr(f"{code} {position}")} classname={quoteattr(report.path)}>')
            out.append(f'      <failure message={quoteattr(message)}>{escape(f"{position}: {code} {message}")}</failure>')
            out.append("    </testcase>")
        out.append("  </testsuite>")
    if not failures:
        out.append('  <testsuite name="torchsanity" tests="1" failures="0" errors="0">')
        out.append('    <testcase name="All checks passed!" classname="torchsanity"/>')
        out.append("  </testsuite>")
    out.append("</testsuites>")
    return "\n".join(out) + "\n"


def render(reports: Sequence[FileReport], output_format: str, summary: Summary = Summary()) -> str:
    if output_format == "json":
        return format_json(reports, summary)
    if output_format == "json-lines":
        return format_json_lines(reports, summary)
    if output_format == "sarif":
        return format_sarif(reports, summary)
    if output_format == "github":
        return format_github(reports)
    if output_format == "gitlab":
        return format_gitlab(reports, summary)
    if output_format == "junit":
        return format_junit(reports, summary)
    if output_format == "full":
        return format_full(reports, summary)
    return format_text(reports, summary)


def iter_problems(reports: Iterable[FileReport]) -> Iterable[FileProblem]:
    for report in reports:
        yield from report.problems
