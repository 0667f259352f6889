"""One parse, one program model, every rule: the analysis of a file, and its fixes."""

from __future__ import annotations

import ast
import re
import warnings
from bisect import bisect_right
from dataclasses import replace
from pathlib import Path
from typing import Callable, Iterable, Sequence

import libcst as cst

from .config import Config
from .context import RuleContext
from .findings import FileProblem, FileReport, Finding, Fix, Position, TextEdit
from .fix_verify import verify_fixes
from .fixes import apply_fixes, line_starts, offset_of
from .model import ProgramModel
from .positions import StatementPositions, locate
from .project import Project
from .registry import all_rules
from .rule import EditKind, NodeEdit, NodeFix, RawFinding, Rule
from .rules.san100_unused_noqa import UnusedNoqa
from .source import NestingTooDeep, parse_source, without_form_feed_indents
from .source_text import UndecodableSource, read_source
from .suppression import is_suppressed, unused_noqa_findings

MAX_FIX_ROUNDS = 10
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # the line breaks Python (and libcst) count, unlike str.splitlines
_ERROR_AT = re.compile(r"error at (\d+):(\d+):?")


def syntax_problem(path: str, error: cst.ParserSyntaxError, source: str | None = None) -> FileProblem:
    """One clear line for code that does not parse. CPython's parser, asked only on error, gives the
    better location and message; libcst's own is the fallback."""
    if isinstance(error, NestingTooDeep):  # never handed to a parser
        return FileProblem(path, "syntax-error", f"skipped: {error.message}", Position(max(error.raw_line, 1), 0))
    if source is not None:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # invalid escapes and the like: not ours to report
                # not under `path`: CPython reads the offending line back from a file of that name, which holds
                # the saved text, not this (maybe unsaved) one, and locates the error on the wrong line's text
                compile(source, "<source>", "exec", ast.PyCF_ONLY_AST | ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
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


# CPython's messages (or the token it stopped at) for code that is valid only in Python 2 or before 3.7.
_OLD_PYTHON_MESSAGES = (
    ("Missing parentheses in call to 'print'", "a Python 2 print statement"),
    ("Missing parentheses in call to 'exec'", "a Python 2 exec statement"),
    ("multiple exception types must be parenthesized", "Python 2 `except E, e:`"),
    ("leading zeros in decimal integer literals", "a Python 2 octal literal"),
    ("parameters cannot be parenthesized", "Python 2 tuple parameters"),
)
_OLD_PYTHON_TOKENS = (
    (re.compile(r"(?:async|await)\b(?!\s*(?:def|with|for)\b)"), "`async` / `await` used as a name (valid only before Python 3.7)"),
    (re.compile(r"<>"), "the Python 2 `<>` operator"),
    (re.compile(r"`"), "Python 2 backquotes"),
    (re.compile(r"\d+[lL]\b"), "a Python 2 long literal"),
)


def python_syntax_problem(path: str, error: SyntaxError) -> FileProblem:
    """A syntax error as CPython's parser reported it; code that only older Pythons accept is said to be
    that (``cannot parse: a Python 2 print statement: …``)."""
    start = Position(max(error.lineno or 1, 1), max((error.offset or 1) - 1, 0))
    old = _old_python(error)
    if old is not None:
        return FileProblem(path, "syntax-error", f"cannot parse: {old} ({error.msg})", start)
    return FileProblem(path, "syntax-error", f"syntax error: {error.msg}", start)


def _old_python(error: SyntaxError) -> str | None:
    for fragment, what in _OLD_PYTHON_MESSAGES:
        if fragment in (error.msg or ""):
            return what
    text, offset = error.text or "", max((error.offset or 1) - 1, 0)
    for pattern, what in _OLD_PYTHON_TOKENS:
        if pattern.match(text, offset):
            return what
    return None


def shifted_back(report: FileReport, shifts: dict[int, int]) -> FileReport:
    """Findings of text parsed without its form-feed indentation (:func:`without_form_feed_indents`)
    moved back onto the original lines; a fix that touches such a line is not offered."""
    def moved(position: Position) -> Position:
        return Position(position.line, position.column + shifts.get(position.line, 0))

    def touches(fix) -> bool:
        return any(line in shifts for edit in fix.edits for line in range(edit.start.line, edit.end.line + 1))

    report.findings = [
        replace(f, start=moved(f.start), end=moved(f.end), fix=None if f.fix is not None and touches(f.fix) else f.fix)
        for f in report.findings
    ]
    return report


# Why a file was skipped when parsing it ran out of memory (a worker under its memory budget says more).
OUT_OF_MEMORY = "skipped: ran out of memory while parsing"


def parse_problem(path: str, error: Exception, source: str) -> FileProblem:
    """The problem to report for text that does not parse (any of :data:`PARSE_ERRORS`)."""
    if isinstance(error, cst.ParserSyntaxError):
        return syntax_problem(path, error, source)
    if isinstance(error, SyntaxError):
        return python_syntax_problem(path, error)
    if isinstance(error, MemoryError):
        return FileProblem(path, "skipped", OUT_OF_MEMORY)
    return FileProblem(path, "syntax-error", f"cannot parse: {type(error).__name__}")  # pathological nesting, NUL bytes


def unreadable_problem(path: str, error: Exception) -> FileProblem:
    """The problem to report for a file that cannot be read or decoded as Python source."""
    if isinstance(error, UndecodableSource):
        reason = str(error)
        return FileProblem(path, "unreadable", f"cannot parse: {reason}" if reason.startswith("encoding problem") else f"cannot read file: {reason}")
    if isinstance(error, (UnicodeDecodeError, ValueError, SyntaxError)):
        return FileProblem(path, "unreadable", "cannot read file: binary or undecodable file")
    return FileProblem(path, "unreadable", f"cannot read file: {getattr(error, 'strerror', None) or error}")


# What parsing raises on text that is not Python (or is too deep for the parser).
PARSE_ERRORS = (cst.ParserSyntaxError, SyntaxError, RecursionError, MemoryError, ValueError)


def analyze_source(
    source: str,
    path: str = "<string>",
    config: Config | None = None,
    project: Project | None = None,
    rules: Sequence[type[Rule]] | None = None,
    verify: bool = True,
) -> FileReport:
    """Every enabled rule's findings on ``source``; never raises on user input. With ``verify`` (the
    default) every fix has passed :func:`~torchsanity.analyzers.fix_verify.verify_fixes`."""
    parsed_text, shifts = without_form_feed_indents(source)
    try:
        module = parse_source(parsed_text)
    except PARSE_ERRORS as error:
        return FileReport(path=path, problems=[parse_problem(path, error, source)])
    report = analyze_program(ProgramModel.build(module, path, project=project), parsed_text, config, rules)
    if shifts:
        report = shifted_back(report, shifts)
    if verify:
        report = verify_fixes(source, report, reanalyzer(path, config, project, rules))
    return report


def reanalyzer(
    path: str, config: Config | None, project: Project | None, rules: Sequence[type[Rule]] | None
) -> Callable[[str], FileReport]:
    """The analysis that :func:`verify_fixes` runs on fixed text: the rules that reported the fixes
    (those of ``rules`` with one of the given codes), no verification."""
    def reanalyze(text: str, codes: frozenset) -> FileReport:
        chosen = [rule for rule in (rules if rules is not None else all_rules()) if rule.code in codes]
        return analyze_source(text, path, config, project, chosen, verify=False)

    return reanalyze


def analyze_program(
    program: ProgramModel,
    source: str,
    config: Config | None = None,
    rules: Sequence[type[Rule]] | None = None,
    statement_lines: Callable[[], dict[int, int]] | None = None,
    positions: StatementPositions | None = None,
) -> FileReport:
    """Every enabled rule's findings on the program model of ``source``. ``statement_lines``: where the module's
    top-level statements begin (``{id(statement): line}``), when the caller already knows; ``positions``: the
    positions kept from earlier versions of the same buffer (:class:`~torchsanity.analyzers.positions.StatementPositions`)."""
    path = program.path
    report = FileReport(path=path)
    config = config or Config()
    raw: list[tuple[type[Rule], RawFinding]] = []
    ran: set[str] = set()
    ctx = RuleContext(program)
    for rule_class in rules if rules is not None else all_rules():
        if not config.is_enabled(rule_class.code, path if path != "<string>" else None):
            continue
        try:
            raw.extend((rule_class, item) for item in rule_class().check(ctx))
            ran.add(rule_class.code)  # (a rule that failed does not make its noqa directives look unused)
        except Exception as error:  # a rule bug must not cost the user the other rules
            report.problems.append(
                FileProblem(path, "internal-error", f"internal error in {rule_class.code}: {type(error).__name__}: {error}")
            )
    suppressed: set[tuple[int, str]] = set()
    if raw:
        try:
            report.findings = _locate(program, source, path, config, raw, report.problems,
                                      statement_lines() if statement_lines is not None else None, suppressed,
                                      positions)
        except RecursionError:
            report.problems.append(FileProblem(path, "internal-error", "the file nests too deeply to locate findings"))
    if UnusedNoqa.code in ran:
        unused = unused_noqa_findings(source, path, suppressed, ran, frozenset(r.code for r in all_rules()),
                                      UnusedNoqa, config.severity_for(UnusedNoqa.code, UnusedNoqa.severity))
        if unused:
            report.findings = sorted(report.findings + unused, key=lambda f: (f.start, f.code))
    return report


def _locate(
    program: ProgramModel,
    source: str,
    path: str,
    config: Config,
    raw: list[tuple[type[Rule], RawFinding]],
    problems: list[FileProblem],
    statement_lines: dict[int, int] | None,
    suppressed: set[tuple[int, str]],
    cache: StatementPositions | None = None,
) -> list[Finding]:
    nodes = [n for _, item in raw for n in (item.node, item.end_node) if n is not None]
    nodes += [edit.node for _, item in raw if item.fix for edit in item.fix.edits]
    positions = locate(program, nodes, statement_lines, source, cache)
    lines = _LINE_BREAK.split(source)
    starts = line_starts(source)
    newline = program.module.default_newline
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
            suppressed.add((start.line, rule_class.code))
            continue
        fix = _text_fix(item.fix, program, positions, source, starts, lines, newline) if item.fix else None
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


def _text_fix(fix: NodeFix, program: ProgramModel, positions, source: str, starts: list[int], lines: list[str],
              newline: str) -> Fix | None:
    edits: list[TextEdit] = []
    for edit in fix.edits:
        exact = edit.node in positions and edit.node not in getattr(positions, "inexact", ())
        text_edit = _text_edit(edit, program, positions, source, starts, lines, newline) if exact else None
        if text_edit is None:
            return None  # a fix that cannot be applied exactly is not offered
        edits.append(text_edit)
    return Fix(description=fix.description, edits=tuple(edits), applicability=fix.applicability)


def _position(starts: list[int], offset: int) -> Position:
    line = bisect_right(starts, offset)
    return Position(line, offset - starts[line - 1])


def _replaced_span(
    node: cst.CSTNode, program: ProgramModel, code_range, source: str, starts: list[int]
) -> tuple[int, int] | None:
    """The offsets of ``node``'s text in ``source``, its parentheses included (libcst's positions leave
    them out, its code for the node keeps them); None when the text there is not the node's code."""
    begin = offset_of(starts, Position(code_range.start.line, code_range.start.column))
    end = offset_of(starts, Position(code_range.end.line, code_range.end.column))
    if isinstance(node, (cst.BaseCompoundStatement, cst.SimpleStatementLine)):
        # generated without its block's indentation: its first line must be the text there
        first = program.module.code_for_node(node.with_changes(leading_lines=())).split("\n", 1)[0].rstrip("\r")
        return (begin, end) if source[begin: begin + len(first)] == first else None
    code = program.module.code_for_node(node)
    if getattr(node, "lpar", None):
        inner = program.module.code_for_node(node.with_changes(lpar=(), rpar=()))
        before = code.find(inner)
        if before < 0:
            return None
        begin, end = begin - before, end + len(code) - before - len(inner)
    if begin < 0 or source[begin:end] != code:
        return None
    return begin, end


def _text_edit(edit: NodeEdit, program: ProgramModel, positions, source: str, starts: list[int], lines: list[str],
               newline: str) -> TextEdit | None:
    code_range = positions[edit.node]
    start = Position(code_range.start.line, code_range.start.column)
    end = Position(code_range.end.line, code_range.end.column)
    if edit.kind is EditKind.REPLACE:
        span = _replaced_span(edit.node, program, code_range, source, starts)
        if span is None:
            return None
        return TextEdit(_position(starts, span[0]), _position(starts, span[1]), _with_newline(edit.text, newline))
    line = lines[start.line - 1] if start.line <= len(lines) else ""
    if line[: start.column].strip():
        return None  # the statement shares its line with other code (`for x in y: step()`)
    indent = line[: start.column]
    line_end = _line_break_after(source, starts, end.line) if edit.kind is not EditKind.INSERT_BEFORE else ""
    if edit.kind is EditKind.INSERT_BEFORE:
        here = _line_break_after(source, starts, start.line) or newline
        text = "".join(f"{indent}{part}{here}" if part else here for part in edit.text.split("\n"))
        return TextEdit(Position(start.line, 0), Position(start.line, 0), text)
    if edit.kind is EditKind.INSERT_AFTER:
        here = line_end or newline
        text = "".join(f"{indent}{part}{here}" if part else here for part in edit.text.split("\n"))
        if line_end:
            after = Position(end.line + 1, 0)
            return TextEdit(after, after, text)
        last = lines[end.line - 1] if end.line <= len(lines) else ""
        return TextEdit(Position(end.line, len(last)), Position(end.line, len(last)), here + text[: -len(here)])
    # EditKind.DELETE_STATEMENT
    if not line_end:  # the last line of the file, without a line break: empty it
        return TextEdit(Position(start.line, 0), Position(end.line, len(lines[end.line - 1])), "")
    return TextEdit(Position(start.line, 0), Position(end.line + 1, 0), "")


def _with_newline(text: str, newline: str) -> str:
    return text.replace("\r\n", "\n").replace("\n", newline)


def _line_break_after(source: str, starts: list[int], line: int) -> str:
    """The line break that ends ``line`` in ``source`` ("" on a last line without one): inserted lines
    take their neighbour's, so a file with mixed line endings never gets ``\r\r\n``."""
    if line >= len(starts):
        return ""
    end = starts[line]
    return "\r\n" if source[end - 2: end] == "\r\n" else source[end - 1]


def applicable(finding: Finding, unsafe: bool) -> bool:
    """Whether ``finding`` has a fix that may be applied: a safe one, or any with ``unsafe``."""
    return finding.fix is not None and (unsafe or finding.fix.is_safe)


def fix_source(
    source: str,
    path: str = "<string>",
    config: Config | None = None,
    project: Project | None = None,
    rules: Sequence[type[Rule]] | None = None,
    unsafe: bool | None = None,
) -> tuple[str, FileReport]:
    """Apply every verified safe fix (and the unsafe ones too with ``unsafe``, by default the
    configuration's ``unsafe_fixes``) until none is left; returns the new text and its report."""
    if unsafe is None:
        unsafe = bool(getattr(config, "unsafe_fixes", False))
    report = analyze_source(source, path, config, project, rules)
    seen = {source}
    for _ in range(MAX_FIX_ROUNDS):
        fixable = [f for f in report.findings if applicable(f, unsafe)]
        if not fixable:
            break
        fixed = apply_fixes(source, fixable)
        if fixed in seen:
            break  # nothing changes, or the fixes go round in a circle
        candidate = analyze_source(fixed, path, config, project, rules)
        if any(p.kind == "syntax-error" for p in candidate.problems):
            break  # never write a fix that does not parse
        seen.add(fixed)
        source, report = fixed, candidate
    return source, report


def analyze_file(path: str | Path, config: Config | None = None, project: Project | None = None) -> FileReport:
    """Read and analyse one file; unreadable files get one problem, not an exception."""
    path_str = str(path)
    try:
        source = read_source(path)
    except (OSError, UnicodeDecodeError, ValueError, SyntaxError) as error:
        return FileReport(path=path_str, problems=[unreadable_problem(path_str, error)])
    return analyze_source(source, path_str, config, project)


def iter_findings(reports: Iterable[FileReport]) -> Iterable[Finding]:
    for report in reports:
        yield from report.findings
