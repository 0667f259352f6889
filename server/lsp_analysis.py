"""One analysis of one document (a Python file, or a notebook's code cells as one program), run in a
worker thread, and everything the server derives from it: diagnostics per client document, and the
mapping of engine positions / fixes back to client documents and UTF-16 ranges.

Nothing in here touches the event loop or pygls; :func:`run_analysis` is a pure function of a
:class:`Snapshot` so it can run in any executor.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from lsprotocol import types

from ..analyzers import (
    Config,
    FileProblem,
    FileReport,
    Finding,
    Fix,
    Position,
    Project,
    Severity,
    docs_url,
    fix_source,
)
from ..analyzers.live import LiveDocument
from .lsp_codelens import EntryPoint, locate_entry_points
from .lsp_notebook import CombinedNotebook, combine
from .lsp_positions import LineIndex, minimal_edit

SOURCE = "torchsanity"

_SEVERITY = {
    Severity.ERROR: types.DiagnosticSeverity.Error,
    Severity.WARNING: types.DiagnosticSeverity.Warning,
    Severity.INFO: types.DiagnosticSeverity.Information,
}


@dataclass(frozen=True)
class Snapshot:
    """What to analyse, captured on the event loop (cheap); analysed in a worker."""

    key: str  # the document's URI, or the notebook's
    generation: int
    path: str  # file system path (or the URI for non-file documents)
    is_file: bool
    encoding: str
    text: str | None = None  # a Python document
    cells: tuple[tuple[str, str], ...] | None = None  # a notebook: (cell uri, text) of its code cells
    versions: dict = field(default_factory=dict, compare=False)  # client document URI -> version
    config: Config | None = None  # settings already merged over the project's configuration
    project: Project | None = None  # set where the analysis runs (in the worker process, or a thread)
    project_root: str | None = None
    project_generation: int = 0  # bumped when a pyproject.toml changes: every project is read afresh
    disk_changes: tuple[str, ...] = ()  # module files changed on disk in this generation, oldest first
    # path -> text of every open Python file of the project: read instead of the file on disk
    overlay: dict[str, str] | None = field(default=None, compare=False)


@dataclass
class Analysis:
    snapshot: Snapshot
    text: str  # the text the engine saw
    report: FileReport
    excluded: bool = False
    notebook: CombinedNotebook | None = None
    indexes: dict[str, LineIndex] = field(default_factory=dict)  # client URI -> index of its text
    seconds: float = 0.0
    entry_points: tuple[EntryPoint, ...] = ()  # where the script starts training (a file that parsed)
    # the project files the analysis looked for (resolved paths, found or not): a change to one of them
    # may change this document's findings
    dependencies: frozenset[str] = frozenset()

    @property
    def generation(self) -> int:
        return self.snapshot.generation

    @property
    def parsed(self) -> bool:
        return not any(p.kind == "syntax-error" for p in self.report.problems)

    @property
    def uris(self) -> list[str]:
        if self.notebook is not None:
            return [c.uri for c in self.notebook.cells]
        return [self.snapshot.key]

    # ---- positions ------------------------------------------------------------------------------

    def locate(self, position: Position) -> tuple[str, Position] | None:
        """Engine position in the analysed text → (client URI, position in that document)."""
        if self.notebook is None:
            return self.snapshot.key, position
        found = self.notebook.to_cell(position)
        if found is None:
            return None
        cell, cell_position = found
        return cell.uri, cell_position

    def client_range(self, start: Position, end: Position) -> tuple[str, types.Range] | None:
        located = self.locate(start)
        if located is None:
            return None
        uri, cell_start = located
        end_located = self.locate(end)
        index = self.indexes[uri]
        if end_located is None or end_located[0] != uri:
            # A range that runs past its cell ends with the cell.
            end_pos = index.end_position()
            return uri, types.Range(start=index.to_client(cell_start), end=end_pos)
        return uri, index.range_to_client(cell_start, end_located[1])

    def fix_edits(self, fix: Fix) -> dict[str, list[types.TextEdit]] | None:
        """The fix's edits per client document; None when an edit cannot be mapped exactly."""
        out: dict[str, list[types.TextEdit]] = {}
        for edit in fix.edits:
            start = self.locate(edit.start)
            end = self.locate(edit.end)
            if start is None:
                return None
            uri = start[0]
            index = self.indexes[uri]
            if end is None or end[0] != uri:
                # An edit that ends at the very start of the next cell's marker line (a deleted last
                # statement) ends at the end of this cell; anything else crosses cells.
                if self.notebook is not None and edit.end.column == 0 and self.notebook.cell_at(edit.end.line - 1):
                    prev = self.notebook.cell_at(edit.end.line - 1)
                    if prev is not None and prev[0].uri == uri:
                        out.setdefault(uri, []).append(
                            types.TextEdit(
                                range=types.Range(start=index.to_client(start[1]), end=index.end_position()),
                                new_text=edit.new_text,
                            )
                        )
                        continue
                return None
            out.setdefault(uri, []).append(
                types.TextEdit(range=index.range_to_client(start[1], end[1]), new_text=edit.new_text)
            )
        return out

    # ---- diagnostics ----------------------------------------------------------------------------

    def finding_diagnostics(self) -> dict[str, list[types.Diagnostic]]:
        out: dict[str, list[types.Diagnostic]] = {uri: [] for uri in self.uris}
        for finding in self.report.findings:
            located = self.client_range(finding.start, finding.end)
            if located is None:
                continue
            uri, rng = located
            out[uri].append(finding_diagnostic(finding, rng))
        return out

    def problem_diagnostics(self) -> dict[str, list[types.Diagnostic]]:
        out: dict[str, list[types.Diagnostic]] = {uri: [] for uri in self.uris}
        for problem in self.report.problems:
            if problem.kind == "internal-error":
                continue  # logged, never shown as a diagnostic
            located = self.locate(problem.start)
            if located is None:
                uri, position = self.uris[0], Position(1, 0)
            else:
                uri, position = located
            index = self.indexes[uri]
            line_end = Position(position.line, len(index.line_text(position.line - 1)))
            rng = index.range_to_client(position, max(line_end, position))
            out[uri].append(
                types.Diagnostic(
                    range=rng,
                    message=problem.message,
                    severity=types.DiagnosticSeverity.Error
                    if problem.kind == "syntax-error"
                    else types.DiagnosticSeverity.Warning,
                    code=problem.code,
                    source=SOURCE,
                )
            )
        return out


def finding_diagnostic(finding: Finding, rng: types.Range) -> types.Diagnostic:
    return types.Diagnostic(
        range=rng,
        message=finding.message,
        severity=_SEVERITY.get(finding.severity, types.DiagnosticSeverity.Warning),
        code=finding.code,
        code_description=types.CodeDescription(href=docs_url(finding.code)),
        source=SOURCE,
        data={"name": finding.name, "fixable": finding.fix is not None},
    )


class LiveDocuments:
    """The :class:`LiveDocument` of each recently analysed document, so that an edit reparses only the
    statements it touched. Bounded: the least recently analysed are dropped (they parse afresh)."""

    def __init__(self, capacity: int = 8) -> None:
        self.capacity = capacity
        self._documents: OrderedDict[str, LiveDocument] = OrderedDict()

    def get(self, key: str) -> LiveDocument:
        document = self._documents.pop(key, None) or LiveDocument()
        self._documents[key] = document
        while len(self._documents) > self.capacity:
            self._documents.popitem(last=False)
        return document


class Projects:
    """The projects of the process that analyses, one per root: cached sibling models live as long as
    the server's generation, and the module files the snapshot says changed on disk are invalidated
    once each."""

    def __init__(self) -> None:
        self._projects: dict[str, tuple[int, Project, int]] = {}  # root -> (generation, project, changes seen)

    def for_snapshot(self, snapshot: Snapshot) -> Project | None:
        root = snapshot.project_root
        if root is None:
            return None
        generation, changes = snapshot.project_generation, snapshot.disk_changes
        cached = self._projects.get(root)
        if cached is None or cached[0] < generation:
            cached = (generation, Project(root), len(changes))
        elif cached[0] == generation and cached[2] < len(changes):
            cached[1].invalidate(changes[cached[2]:])
            cached = (generation, cached[1], len(changes))
        # (a snapshot older than the project, a fix-all of an earlier analysis, changes nothing)
        self._projects[root] = cached
        return cached[1]


def run_analysis(snapshot: Snapshot, live: LiveDocuments | None = None) -> Analysis:
    """Analyse a snapshot (in a worker thread), incrementally where ``live`` knows the document's last
    version. Never raises on user input."""
    began = time.perf_counter()
    config = snapshot.config or Config()
    path = snapshot.path
    if snapshot.cells is not None:
        notebook = combine(list(snapshot.cells))
        text = notebook.text
        indexes = {uri: LineIndex(cell_text, snapshot.encoding) for uri, cell_text in snapshot.cells}
    else:
        notebook = None
        text = snapshot.text or ""
        indexes = {snapshot.key: LineIndex(text, snapshot.encoding)}
    if snapshot.is_file and config.is_excluded(path):
        return Analysis(snapshot, text, FileReport(path=path), excluded=True, notebook=notebook, indexes=indexes)
    document = live.get(snapshot.key) if live is not None else LiveDocument()
    entries: tuple[EntryPoint, ...] = ()
    project = snapshot.project
    if project is not None:
        overlay = snapshot.overlay or {}
        project.set_overlay(overlay)
        if path not in overlay:
            project.invalidate([path])  # what it looked for last time (a notebook: not in the overlay)
    try:
        report = document.analyze(text, path, config, project)
    except Exception as error:  # the engine promises not to raise; if it does, the server lives on
        report = _internal_error(path, error)
    if notebook is None and document.model is not None and not any(p.kind == "syntax-error" for p in report.problems):
        try:
            entries = locate_entry_points(document.model, text, document.parsed.statement_lines())
        except Exception as error:  # noqa: BLE001 - no lens costs less than no findings
            report.problems.append(_internal_error(path, error, "entry points").problems[0])
    dependencies = frozenset(str(p) for p in project.dependencies(path)) if project is not None else frozenset()
    return Analysis(
        snapshot, text, report, notebook=notebook, indexes=indexes, seconds=time.perf_counter() - began,
        entry_points=entries, dependencies=dependencies,
    )


def _internal_error(path: str, error: Exception, what: str = "internal error") -> FileReport:
    message = f"{what}: {type(error).__name__}: {error}"
    return FileReport(path=path, problems=[FileProblem(path, "internal-error", message)])


def stopped_analysis(snapshot: Snapshot, message: str) -> Analysis:
    """The result of an analysis that was stopped (time budget): one warning, no findings."""
    if snapshot.cells is not None:
        notebook = combine(list(snapshot.cells))
        text = notebook.text
        indexes = {uri: LineIndex(cell_text, snapshot.encoding) for uri, cell_text in snapshot.cells}
    else:
        notebook = None
        text = snapshot.text or ""
        indexes = {snapshot.key: LineIndex(text, snapshot.encoding)}
    report = FileReport(path=snapshot.path, problems=[FileProblem(snapshot.path, "analysis-timeout", message)])
    return Analysis(snapshot, text, report, notebook=notebook, indexes=indexes)


def fix_all_edits(analysis: Analysis) -> dict[str, types.TextEdit] | None:
    """``source.fixAll``: every safe fix, iterated, as one edit per client document (None: nothing to
    do). Runs in a worker thread."""
    if analysis.excluded or not analysis.parsed:
        return None
    snapshot = analysis.snapshot
    try:
        fixed, _ = fix_source(analysis.text, snapshot.path, snapshot.config, snapshot.project, unsafe=False)
    except Exception:  # pragma: no cover - the engine never raises on user input
        return None
    if fixed == analysis.text:
        return None
    if analysis.notebook is None:
        edit = minimal_edit(analysis.text, fixed, analysis.indexes[snapshot.key])
        return {snapshot.key: edit} if edit is not None else None
    cells = analysis.notebook.split_fixed(fixed)
    if cells is None:
        return None
    out: dict[str, types.TextEdit] = {}
    for cell in analysis.notebook.cells:
        edit = minimal_edit(cell.text, cells[cell.uri], analysis.indexes[cell.uri])
        if edit is not None:
            out[cell.uri] = edit
    return out or None


def file_path(uri: str, to_fs_path: Callable[[str], str | None]) -> tuple[str, bool]:
    """The file system path of a URI, and whether it is a real file path."""
    if uri.startswith("file:"):
        path = to_fs_path(uri)
        if path:
            return str(Path(path)), True
    return uri, False
