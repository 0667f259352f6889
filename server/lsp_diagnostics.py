"""What the server has published, per client document, and how it follows the edits.

Policy: while a text does not parse, the findings of the last text that parsed stay and the syntax
error is added (code ``SAN000``, as every file-level problem). Those kept findings, and the probe's
diagnostics (which belong to the text the probe ran), are **moved through every edit**: lines inserted
or deleted above a diagnostic move it, an edit on its line before it shifts its columns, and a
diagnostic that an edit overlaps is withdrawn; none is left on a line it no longer describes. The moved diagnostics are
published at once when no analysis will replace them soon: the text does not parse, the run mode is
``onSave``, or they are the probe's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from lsprotocol import types

from .lsp_analysis import Analysis
from .lsp_positions import split_lines, split_lines_keepends, units

Diagnostics = list[types.Diagnostic]


# ---- moving ranges through edits ----------------------------------------------------------------


@dataclass(frozen=True)
class Edit:
    """One replacement, in client positions of the text before it."""

    start: types.Position
    end: types.Position
    text: str


def _key(position: types.Position) -> tuple[int, int]:
    return position.line, position.character


def edits_of(changes: Sequence[object], old_text: str | None, new_text: str) -> list[Edit] | None:
    """The edits of a ``didChange``'s content changes, in order. A whole-document change becomes the
    lines that differ between the old and the new text. None: the old text is unknown."""
    if any(not hasattr(change, "range") or change.range is None for change in changes):
        if old_text is None:
            return None
        return [line_diff(old_text, new_text)]
    return [Edit(change.range.start, change.range.end, change.text) for change in changes]


def line_diff(old: str, new: str) -> Edit:
    """The smallest run of whole lines that turns ``old`` into ``new``."""
    old_lines, new_lines = split_lines_keepends(old), split_lines_keepends(new)
    prefix = 0
    limit = min(len(old_lines), len(new_lines))
    while prefix < limit and old_lines[prefix] == new_lines[prefix]:
        prefix += 1
    suffix = 0
    while (
        suffix < limit - prefix
        and old_lines[len(old_lines) - 1 - suffix] == new_lines[len(new_lines) - 1 - suffix]
    ):
        suffix += 1
    return Edit(
        types.Position(prefix, 0),
        types.Position(len(old_lines) - suffix, 0),
        "".join(new_lines[prefix: len(new_lines) - suffix]),
    )


def moved_range(rng: types.Range, edit: Edit, encoding: str) -> types.Range | None:
    """``rng`` after ``edit``: unchanged before it, shifted after it, None (withdrawn) when it overlaps."""
    start, end = _key(edit.start), _key(edit.end)
    if _key(rng.end) <= start:
        return rng
    if _key(rng.start) < end:
        return None
    inserted = split_lines(edit.text)
    added = len(inserted) - 1
    tail = units(inserted[-1], encoding)
    line_delta = added - (edit.end.line - edit.start.line)

    def shifted(position: types.Position) -> types.Position:
        if position.line == edit.end.line:
            base = tail if added else edit.start.character + tail
            return types.Position(edit.start.line + added, base + position.character - edit.end.character)
        return types.Position(position.line + line_delta, position.character)

    return types.Range(start=shifted(rng.start), end=shifted(rng.end))


def move(diagnostics: Iterable[types.Diagnostic], edit: Edit, encoding: str) -> tuple[Diagnostics, bool]:
    """``diagnostics`` after ``edit`` (see :func:`moved_range`), and whether any changed."""
    out: Diagnostics = []
    changed = False
    for diagnostic in diagnostics:
        rng = moved_range(diagnostic.range, edit, encoding)
        if rng != diagnostic.range:
            changed = True
            if rng is None:
                continue
            diagnostic = _with_range(diagnostic, rng)
        out.append(diagnostic)
    return out, changed


def _with_range(diagnostic: types.Diagnostic, rng: types.Range) -> types.Diagnostic:
    return types.Diagnostic(
        range=rng,
        message=diagnostic.message,
        severity=diagnostic.severity,
        code=diagnostic.code,
        code_description=diagnostic.code_description,
        source=diagnostic.source,
        tags=diagnostic.tags,
        related_information=diagnostic.related_information,
        data=diagnostic.data,
    )


def move_all(diagnostics: Diagnostics, edits: list[Edit] | None, encoding: str) -> tuple[Diagnostics, bool]:
    """``diagnostics`` through every edit in order (all withdrawn when the edits are unknown)."""
    if edits is None:
        return [], bool(diagnostics)
    changed = False
    for edit in edits:
        diagnostics, moved = move(diagnostics, edit, encoding)
        changed = changed or moved
    return diagnostics, changed


def move_ranges(ranges: list[types.Range], edits: list[Edit] | None, encoding: str) -> list[types.Range]:
    """``ranges`` through every edit in order, the withdrawn left out (all, when the edits are unknown)."""
    if edits is None:
        return []
    for edit in edits:
        ranges = [moved for moved in (moved_range(rng, edit, encoding) for rng in ranges) if moved is not None]
    return ranges


# ---- the store ----------------------------------------------------------------------------------


class DiagnosticStore:
    """Static diagnostics per client document, the kept findings per analysed document (a file, or a
    notebook's cells), the probe's diagnostics (owned by the probe manager, passed in ``probe``) and the
    CodeLens ranges of each file: everything positioned in the client's text that must follow its edits."""

    def __init__(
        self,
        send: Callable[[str, Diagnostics, int | None], None],
        probe: dict[str, Diagnostics],
        version_of: Callable[[str], int | None],
    ) -> None:
        self._send = send
        self.probe = probe
        self._version_of = version_of
        self.static: dict[str, Diagnostics] = {}  # client URI -> the analysis' diagnostics
        self._findings: dict[str, dict[str, Diagnostics]] = {}  # state key -> client URI -> kept findings
        self._published: dict[str, list[str]] = {}  # state key -> client URIs it published on
        self.lenses: dict[str, list[types.Range]] = {}  # document URI -> its entry points' lens ranges

    def for_uri(self, uri: str) -> Diagnostics:
        return list(self.static.get(uri, []))

    def accept(self, key: str, analysis: Analysis, enabled: bool) -> None:
        """Publish an analysis of the document's current text."""
        if analysis.excluded or not enabled:
            findings = self._findings[key] = {uri: [] for uri in analysis.uris}
            diagnostics = dict(findings)
        else:
            if analysis.parsed:
                self._findings[key] = analysis.finding_diagnostics()
            findings = self._findings.get(key, {})
            problems = analysis.problem_diagnostics()
            diagnostics = {uri: findings.get(uri, []) + problems.get(uri, []) for uri in analysis.uris}
        previous = set(self._published.get(key, []))
        self.static.update(diagnostics)
        for uri in previous - set(diagnostics):  # cells removed from the notebook
            self.static.pop(uri, None)
            self._send(uri, [], None)
        self._published[key] = list(diagnostics)
        for uri in diagnostics:
            self.republish(uri, analysis.snapshot.versions.get(uri))

    def edited(self, key: str, uri: str, edits: list[Edit] | None, encoding: str, publish_static: bool) -> None:
        """Move the document's diagnostics through ``edits``; publish them if they moved and no analysis
        will replace them (``publish_static``), or if the probe's moved."""
        if uri in self.lenses:
            self.lenses[uri] = move_ranges(self.lenses[uri], edits, encoding)
        kept = self._findings.get(key, {})
        if uri in kept:
            kept[uri], _ = move_all(kept[uri], edits, encoding)
        static_moved = probe_moved = False
        if uri in self.static:
            self.static[uri], static_moved = move_all(self.static[uri], edits, encoding)
        if self.probe.get(uri):
            self.probe[uri], probe_moved = move_all(self.probe[uri], edits, encoding)
        if probe_moved or (static_moved and publish_static):
            self.republish(uri)

    def republish(self, uri: str, version: int | None = None) -> None:
        if version is None:
            version = self._version_of(uri)
        self._send(uri, self.for_uri(uri) + list(self.probe.get(uri, [])), version)

    def closed(self, key: str) -> list[str]:
        """Forget a closed document; publish nothing on each of its URIs (returned)."""
        self._findings.pop(key, None)
        self.lenses.pop(key, None)
        uris = self._published.pop(key, []) or [key]
        for uri in uris:
            self.static.pop(uri, None)
            self._send(uri, [], None)
        return uris
