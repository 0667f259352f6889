"""One parse, one model, every rule: the analysis of a file, and its fixes."""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import libcst as cst

from torchsanity.analyzers.config import Config
from torchsanity.analyzers.findings import FileProblem, FileReport, Finding, Fix, Position, TextEdit
from torchsanity.analyzers.fixes import apply_fixes
from torchsanity.analyzers.model import ProgramModel
from torchsanity.analyzers.positions import locate
from torchsanity.analyzers.project import Project
from torchsanity.analyzers.registry import all_rules
from torchsanity.analyzers.rule import NodeEdit, NodeFix, RawFinding, Rule
from torchsanity.analyzers.source import parse_source, read_source
from torchsanity.analyzers.suppression import is_suppressed

MAX_FIX_ROUNDS = 10


def syntax_problem(path: str, error: cst.ParserSyntaxError) -> FileProblem:
    message = error.message.removeprefix("parser error: ") or "invalid syntax"
    return FileProblem(
        path=path,
        kind="syntax-error",
        message=f"syntax error: {message}",
        start=Position(max(error.raw_line, 1), max(error.raw_column, 0)),
    )


def analyze_source(
    source: str,
    path: str = "<string>",
    config: Config | None = None,
    project: Project | None = None,
    rules: Sequence[type[Rule]] | None = None,
) -> FileReport:
    """Every enabled rule's findings on ``source``; never raises on user input."""
    report = FileReport(path=path)
    config = config or Config()
    try:
        module = parse_source(source)
    except cst.ParserSyntaxError as error:
        report.problems.append(syntax_problem(path, error))
        return report
    except (RecursionError, MemoryError, ValueError) as error:  # pathological nesting, NUL bytes
        report.problems.append(FileProblem(path, "syntax-error", f"cannot parse: {type(error).__name__}"))
        return report
    model = ProgramModel.build(module, path, project=project)
    raw: list[tuple[type[Rule], RawFinding]] = []
    for rule_class in rules if rules is not None else all_rules():
        if not config.is_enabled(rule_class.code, path if path != "<string>" else None):
            continue
        try:
            raw.extend((rule_class, item) for item in rule_class().check(model))
        except Exception as error:  # a rule bug must not cost the user the other rules
            report.problems.append(
                FileProblem(path, "internal-error", f"internal error in {rule_class.code}: {type(error).__name__}: {error}")
            )
    if raw:
        report.findings = _locate(model, source, path, config, raw)
    return report


def _locate(
    model: ProgramModel,
    source: str,
    path: str,
    config: Config,
    raw: list[tuple[type[Rule], RawFinding]],
) -> list[Finding]:
    nodes = [n for _, item in raw for n in (item.node, item.end_node) if n is not None]
    nodes += [edit.node for _, item in raw if item.fix for edit in item.fix.edits]
    positions = locate(model, nodes)
    lines = source.splitlines()
    findings: dict[tuple, Finding] = {}
    for rule_class, item in raw:
        start = positions[item.node].start
        end = positions[item.end_node or item.node].end
        line_text = lines[start.line - 1] if 0 < start.line <= len(lines) else ""
        if is_suppressed(rule_class.code, line_text):
            continue
        fix = _text_fix(item.fix, positions, lines) if item.fix else None
        finding = Finding(
            code=rule_class.code,
            name=rule_class.name,
            severity=config.severity_for(rule_class.code, rule_class.severity),
            message=item.message,
            path=path,
            start=Position(start.line, start.column),
            end=Position(end.line, end.column),
            fix=fix,
        )
        findings.setdefault((finding.code, finding.start, finding.end), finding)
    return sorted(findings.values(), key=lambda f: (f.start, f.code))


def _text_fix(fix: NodeFix, positions, lines: list[str]) -> Fix | None:
    edits: list[TextEdit] = []
    for edit in fix.edits:
        text_edit = _text_edit(edit, positions, lines)
        if text_edit is None:
            return None  # a fix that cannot be applied exactly is not offered
        edits.append(text_edit)
    return Fix(description=fix.description, edits=tuple(edits))


def _text_edit(edit: NodeEdit, positions, lines: list[str]) -> TextEdit | None:
    code_range = positions[edit.node]
    start = Position(code_range.start.line, code_range.start.column)
    end = Position(code_range.end.line, code_range.end.column)
    if edit.kind == "replace":
        return TextEdit(start, end, edit.text)
    line = lines[start.line - 1] if start.line <= len(lines) else ""
    if line[: start.column].strip():
        return None  # the statement shares its line with other code (`for x in y: step()`)
    indent = line[: start.column]
    if edit.kind == "insert_before":
        text = "".join(f"{indent}{part}\n" if part else "\n" for part in edit.text.split("\n"))
        return TextEdit(Position(start.line, 0), Position(start.line, 0), text)
    if edit.kind == "insert_after":
        text = "".join(f"{indent}{part}\n" if part else "\n" for part in edit.text.split("\n"))
        after = Position(end.line + 1, 0) if end.line < len(lines) else None
        if after is None:
            last = lines[end.line - 1] if end.line <= len(lines) else ""
            return TextEdit(Position(end.line, len(last)), Position(end.line, len(last)), "\n" + text.rstrip("\n"))
        return TextEdit(after, after, text)
    if edit.kind == "delete_statement":
        return TextEdit(Position(start.line, 0), Position(end.line + 1, 0), "")
    raise ValueError(f"unknown edit kind {edit.kind!r}")


def fix_source(
    source: str,
    path: str = "<string>",
    config: Config | None = None,
    project: Project | None = None,
    rules: Sequence[type[Rule]] | None = None,
) -> tuple[str, FileReport]:
    """Apply every safe fix until none is left; returns the new text and its report."""
    report = analyze_source(source, path, config, project, rules)
    for _ in range(MAX_FIX_ROUNDS):
        fixable = [f for f in report.findings if f.fix is not None]
        if not fixable:
            break
        fixed = apply_fixes(source, fixable)
        if fixed == source:
            break
        candidate = analyze_source(fixed, path, config, project, rules)
        if any(p.kind == "syntax-error" for p in candidate.problems):
            break  # never write a fix that does not parse
        source, report = fixed, candidate
    return source, report


def analyze_file(path: str | Path, config: Config | None = None, project: Project | None = None) -> FileReport:
    """Read and analyse one file; unreadable files get one problem, not an exception."""
    path_str = str(path)
    try:
        source = read_source(path)
    except (OSError, UnicodeDecodeError, ValueError, SyntaxError) as error:
        reason = "binary or undecodable file" if isinstance(error, (UnicodeDecodeError, ValueError, SyntaxError)) else str(error)
        return FileReport(path=path_str, problems=[FileProblem(path_str, "unreadable", f"cannot read file: {reason}")])
    return analyze_source(source, path_str, config, project)


def iter_findings(reports: Iterable[FileReport]) -> Iterable[Finding]:
    for report in reports:
        yield from report.findings
