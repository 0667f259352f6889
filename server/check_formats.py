"""Output formats of `torchsanity check`: text (ruff-like), JSON, SARIF 2.1.0 and GitHub annotations.

Every formatter takes the list of :class:`FileReport` (already sorted by path) and returns the text to
print. Lines and columns are 1-based everywhere (the engine's columns are 0-based code points).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Iterable, Sequence

from ..analyzers import FileProblem, FileReport, Finding, Severity, all_rules, docs_url

FORMATS = ("text", "json", "sarif", "github")


@dataclass(frozen=True)
class Summary:
    """What `--fix` did, for the closing line of the text format."""

    fixed: int = 0
    fixing: bool = False
    quiet: bool = False  # findings only: no closing summary, nothing at all when clean


def _findings(reports: Sequence[FileReport]) -> list[Finding]:
    return [f for report in reports for f in report.findings]


def _problems(reports: Sequence[FileReport]) -> list[FileProblem]:
    return [p for report in reports for p in report.problems]


def _fixable(finding: Finding) -> bool:
    return finding.fix is not None


# ---- text ----------------------------------------------------------------------------------------


def problem_line(problem: FileProblem) -> str:
    return f"{problem.path}:{problem.start.line}:{problem.start.column + 1}: {problem.message}"


def finding_line(finding: Finding) -> str:
    return f"{finding.path}:{finding.start.line}:{finding.start.column + 1}: {finding.code} {finding.message}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def format_text(reports: Sequence[FileReport], summary: Summary = Summary(), show_source: bool = False) -> str:
    lines: list[str] = []
    for report in reports:
        for problem in report.problems:
            lines.append(problem_line(problem))
        for finding in report.findings:
            lines.append(finding_line(finding))
    findings = _findings(reports)
    problems = _problems(reports)
    fixable = sum(1 for f in findings if _fixable(f))
    if summary.quiet:
        pass
    elif findings or problems or summary.fixed:
        parts = []
        if summary.fixing:
            total = len(findings) + summary.fixed
            parts.append(f"Found {_plural(total, 'problem')} ({summary.fixed} fixed, {len(findings)} remaining).")
        else:
            text = f"Found {_plural(len(findings), 'problem')}."
            if fixable:
                text += f"\n[*] {fixable} fixable with `torchsanity check --fix`."
            parts.append(text)
        if problems:
            parts.append(f"{_plural(len({p.path for p in problems}), 'file')} could not be fully checked.")
        lines.extend(parts)
    else:
        lines.append("All checks passed!")
    return "\n".join(lines) + "\n" if lines else ""


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
    """A problem in the shape of a finding, so a consumer sees syntax errors too (``code`` is null)."""
    return {
        "path": problem.path,
        "line": problem.start.line,
        "column": problem.start.column + 1,
        "end_line": problem.start.line,
        "end_column": problem.start.column + 1,
        "code": None,
        "name": problem.kind,
        "severity": Severity.ERROR.value,
        "message": problem.message,
    }


def format_json(reports: Sequence[FileReport]) -> str:
    items: list[dict] = []
    for report in reports:
        items.extend(problem_json(p) for p in report.problems)
        items.extend(f.to_json() for f in report.findings)
    return json.dumps(items, indent=2, ensure_ascii=False) + "\n"


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


def format_sarif(reports: Sequence[FileReport]) -> str:
    rules = list(all_rules())
    index = {rule.code: i for i, rule in enumerate(rules)}
    driver = {
        "name": "torchsanity",
        "informationUri": "https://github.com/torchsanity/torchsanity",
        "version": _tool_version(),
        "rules": [
            {
                "id": rule.code,
                "name": rule.name,
                "shortDescription": {"text": rule.message},
                "fullDescription": {"text": rule.what() or rule.message},
                "help": {"text": rule.docs_markdown(), "markdown": rule.docs_markdown()},
                "helpUri": docs_url(rule.code),
                "defaultConfiguration": {"level": _SARIF_LEVEL.get(rule.severity, "warning")},
            }
            for rule in rules
        ],
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
            "descriptor": {"id": p.kind},
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
            out.append(github_line("error", p.path, p.start.line, p.start.column + 1, f"torchsanity {p.kind}", p.message))
        for f in report.findings:
            out.append(
                github_line(
                    _GITHUB_COMMAND.get(f.severity, "warning"), f.path, f.start.line, f.start.column + 1, f.code,
                    f.message,
                )
            )
    return "\n".join(out) + ("\n" if out else "")


def render(reports: Sequence[FileReport], output_format: str, summary: Summary = Summary()) -> str:
    if output_format == "json":
        return format_json(reports)
    if output_format == "sarif":
        return format_sarif(reports)
    if output_format == "github":
        return format_github(reports)
    return format_text(reports, summary)


def iter_problems(reports: Iterable[FileReport]) -> Iterable[FileProblem]:
    for report in reports:
        yield from report.problems
