"""One parse, one model, every rule: the analysis of a file, and its fixes."""

from __future__ import annotations

import ast
import re
import warnings
from pathlib import Path
from typing import Callable, Iterable, Sequence

import libcst as cst

from .config import Config
from .findings import FileProblem, FileReport, Finding, Fix, Position, TextEdit
from .fixes import apply_fixes
from .model import ProgramModel
from .positions import locate
from .project import Project
from .registry import all_rules
from .rule import NodeEdit, NodeFix, RawFinding, Rule
from .source import parse_source, read_source
from .suppression import is_suppressed

MAX_FIX_ROUNDS = 10
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks Python (and libcst) count, unlike str.splitlines
_ERROR_AT = re.compile(r"error at (\d+):(\d+):?")


def syntax_problem(path: str, error: cst.ParserSyntaxError, source: str | None = None) -> FileProblem:
    """One clear line for code that does not parse. CPython's parser, asked only on error, gives the
    better location and message; libcst's own is the fallback."""
    if source is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes and the like: not ours to report
                compile(source, path, "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        except SyntaxError as cpython:
            return python_syntax_problem(path, cpython)
        except (ValueError, RecursionError, MemoryError):
            pass
    message = error.message.removeprefix("parser error: ") or "invalid syntax"
    line, column = max(error.raw_line, 1), max(error.raw_column, 0)
    located = _ERROR_AT.match(message)  # the native parser's "error at 12:4: expected ..."
    if located:
        line, column = int(located.group(1)), int(located.group(2))
        message = message[located.end():].strip() or "invalid syntax"
    return FileProblem(path=path, kind="syntax-error", message=f"syntax error: {message}", start=Position(line, column))


def python_syntax_problem(path: str, error: SyntaxError) -> FileProblem:
    """A syntax error as CPython's parser reported it."""
    return FileProblem(path, "syntax-error", f"syntax error: {error.msg}",
                       Position(max(error.lineno or 1, 1), max((error.offset or 1) - 1, 0)))


def parse_problem(path: str, error: Exception, source: str) -> FileProblem:
    """The problem to report for text that does not parse (any of :data:`PARSE_ERRORS`)."""
    if isinstance(error, cst.ParserSyntaxError):
        return syntax_problem(path, error, source)
    if isinstance(error, SyntaxError):
        return python_syntax_problem(path, error)
    return FileProblem(path, "syntax-error", f"cannot parse: {type(error).__name__}")  # pathological nesting, NUL bytes


# What parsing raises on text that is not Python (or is too deep for the parser).
PARSE_ERRORS = (cst.ParserSyntaxError, SyntaxError, RecursionError, MemoryError, ValueError)


def analyze_source(
    source: str,
    path: str = "<string>",
    config: Config | None = None,
    project: Project | None = None,
    rules: Sequence[type[Rule]] | None = None,
) -> FileReport:
    """Every enabled rule's findings on ``source``; never raises on user input."""
    try:
        module = parse_source(source)
    except PARSE_ERRORS as error:
        return FileReport(path=path, problems=[parse_problem(path, error, source)])
    return analyze_model(ProgramModel.build(module, path, project=project), source, config, rules)


def analyze_model(
    model: ProgramModel,
    source: str,
    config: Config | None = None,
    rules: Sequence[type[Rule]] | None = None,
    statement_lines: Callable[[], dict[int, int]] | None = None,
) -> FileReport:
    """Every enabled rule's findings on the model of ``source``. ``statement_lines``: where the module's
    top-level statements begin (``{id(statement): line}``), when the caller already knows."""
    path = model.path
    report = FileReport(path=path)
    config = config or Config()
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
        try:
            report.findings = _locate(model, source, path, config, raw, report.problems,
                                      statement_lines() if statement_lines is not None else None)
        except RecursionError:
            report.problems.append(FileProblem(path, "internal-error", "the file nests too deeply to locate findings"))
    return report


def _locate(
    model: ProgramModel,
    source: str,
    path: str,
    config: Config,
    raw: list[tuple[type[Rule], RawFinding]],
    problems: list[FileProblem],
    statement_lines: dict[int, int] | None,
) -> list[Finding]:
    nodes = [n for _, item in raw for n in (item.node, item.end_node) if n is not None]
    nodes += [edit.node for _, item in raw if item.fix for edit in item.fix.edits]
    positions = locate(model, nodes, statement_lines)
    lines = _LINE_BREAK.split(source)
    newline = model.module.default_newline
    findings: dict[tuple, Finding] = {}
    misplaced: set[str] = set()
    for rule_class, item in raw:
        if item.node not in positions or (item.end_node or item.node) not in positions:
            if rule_class.code not in misplaced:  # a rule bug: reported once, the other rules still count
                misplaced.add(rule_class.code)
                problems.append(FileProblem(
                    path, "internal-error", f"internal error in {rule_class.code}: reported a node outside the module"))
            continue
        start = positions[item.node].start
        end = positions[item.end_node or item.node].end
        line_text = lines[start.line - 1] if 0 < start.line <= len(lines) else ""
        if is_suppressed(rule_class.code, line_text):
            continue
        fix = _text_fix(item.fix, positions, lines, newline) if item.fix else None
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


def _text_fix(fix: NodeFix, positions, lines: list[str], newline: str) -> Fix | None:
    edits: list[TextEdit] = []
    for edit in fix.edits:
        text_edit = _text_edit(edit, positions, lines, newline) if edit.node in positions else None
        if text_edit is None:
            return None  # a fix that cannot be applied exactly is not offered
        edits.append(text_edit)
    return Fix(description=fix.description, edits=tuple(edits))


def _text_edit(edit: NodeEdit, positions, lines: list[str], newline: str) -> TextEdit | None:
    code_range = positions[edit.node]
    start = Position(code_range.start.line, code_range.start.column)
    end = Position(code_range.end.line, code_range.end.column)
    if edit.kind == "replace":
        return TextEdit(start, end, edit.text.replace("\r\n", "\n").replace("\n", newline))
    line = lines[start.line - 1] if start.line <= len(lines) else ""
    if line[: start.column].strip():
        return None  # the statement shares its line with other code (`for x in y: step()`)
    indent = line[: start.column]
    if edit.kind == "insert_before":
        text = "".join(f"{indent}{part}{newline}" if part else newline for part in edit.text.split("\n"))
        return TextEdit(Position(start.line, 0), Position(start.line, 0), text)
    if edit.kind == "insert_after":
        text = "".join(f"{indent}{part}{newline}" if part else newline for part in edit.text.split("\n"))
        after = Position(end.line + 1, 0) if end.line < len(lines) else None
        if after is None:
            last = lines[end.line - 1] if end.line <= len(lines) else ""
            return TextEdit(Position(end.line, len(last)), Position(end.line, len(last)), newline + text[: -len(newline)])
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
