"""Code actions and hover, computed from an :class:`~torchsanity.server.lsp_analysis.Analysis`.

- the rule's quick fix (``quickfix``) for each finding in the requested range, once it has passed
  :func:`~torchsanity.analyzers.fix_verify.check_fix` (the check `torchsanity check` runs): a safe
  fix is the preferred action, an unsafe one says so in its title and is never preferred;
- "Ignore SANxxx on this line": writes ``# noqa: SANxxx``, merging with a ``noqa`` already there;
- ``source.fixAll.torchsanity``: every safe fix (never an unsafe one) as one edit per document
  (computed by the caller in a worker, see :func:`~torchsanity.server.lsp_analysis.fix_all_edits`);
- hover on a flagged range: the rule's documentation.
"""

from __future__ import annotations

from lsprotocol import types

from ..analyzers import Finding, Fix, Position, add_noqa, docs_url, get_rule
from ..analyzers.engine import reanalyzer
from ..analyzers.fix_verify import check_fix
from .lsp_analysis import Analysis, finding_diagnostic
from .lsp_positions import contains, overlaps, units

FIX_ALL_KIND = "source.fixAll.torchsanity"
NOTEBOOK_FIX_ALL_KIND = "notebook.source.fixAll.torchsanity"
PROVIDED_KINDS = [types.CodeActionKind.QuickFix, FIX_ALL_KIND]


def wants(only: list[str] | None, kind: str) -> bool:
    """Whether a code action of ``kind`` answers a request filtered to ``only`` (prefix match on
    dot-separated kinds, as LSP defines it)."""
    if not only:
        return not kind.startswith("source")  # source actions only when asked for
    return any(kind == o or kind.startswith(o + ".") for o in only)


def workspace_edit(
    edits: dict[str, list[types.TextEdit]], versions: dict[str, int | None], document_changes: bool
) -> types.WorkspaceEdit:
    if document_changes:
        return types.WorkspaceEdit(
            document_changes=[
                types.TextDocumentEdit(
                    text_document=types.OptionalVersionedTextDocumentIdentifier(uri=uri, version=versions.get(uri)),
                    edits=list(uri_edits),
                )
                for uri, uri_edits in edits.items()
            ]
        )
    return types.WorkspaceEdit(changes={uri: list(uri_edits) for uri, uri_edits in edits.items()})


def quick_fixes(
    analysis: Analysis,
    uri: str,
    rng: types.Range,
    only: list[str] | None,
    document_changes: bool,
) -> list[types.CodeAction]:
    """The quick fixes and noqa actions for the findings of ``uri`` that overlap ``rng``."""
    if not wants(only, types.CodeActionKind.QuickFix) or not analysis.parsed or analysis.excluded:
        return []
    versions = analysis.snapshot.versions
    actions: list[types.CodeAction] = []
    noqa_actions: list[types.CodeAction] = []
    seen_noqa: set[tuple[str, int]] = set()
    for finding in analysis.report.findings:
        located = analysis.client_range(finding.start, finding.end)
        if located is None or located[0] != uri or not overlaps(located[1], rng):
            continue
        diagnostic = finding_diagnostic(finding, located[1])
        fix = verified_fix(analysis, finding)
        if fix is not None:
            edits = analysis.fix_edits(fix)
            if edits:
                unsafe = "" if fix.is_safe else " (unsafe: may change behaviour)"
                actions.append(
                    types.CodeAction(
                        title=f"{fix.description} ({finding.code}){unsafe}",
                        kind=types.CodeActionKind.QuickFix,
                        diagnostics=[diagnostic],
                        is_preferred=fix.is_safe,
                        edit=workspace_edit(edits, versions, document_changes),
                    )
                )
        noqa = _noqa_edit(analysis, finding.start, finding.code)
        if noqa is not None and (finding.code, located[1].start.line) not in seen_noqa:
            seen_noqa.add((finding.code, located[1].start.line))
            noqa_uri, edit = noqa
            noqa_actions.append(
                types.CodeAction(
                    title=f"Ignore {finding.code} on this line",
                    kind=types.CodeActionKind.QuickFix,
                    diagnostics=[diagnostic],
                    edit=workspace_edit({noqa_uri: [edit]}, versions, document_changes),
                )
            )
    return actions + noqa_actions


def verified_fix(analysis: Analysis, finding: Finding) -> Fix | None:
    """``finding``'s fix when it passes the engine's fix check on the analysed text (memoised per
    analysis: a client asks for code actions on every cursor move)."""
    if finding.fix is None:
        return None
    cache = analysis.__dict__.setdefault("_verified_fixes", {})
    key = (finding.code, finding.start, finding.end)
    if key not in cache:
        snapshot = analysis.snapshot
        reanalyze = reanalyzer(snapshot.path, snapshot.config, snapshot.project, None)
        try:
            passed = check_fix(analysis.text, finding, analysis.report.findings, reanalyze)
        except Exception:  # pragma: no cover - the engine never raises on user input
            passed = False
        cache[key] = finding.fix if passed else None
    return cache[key]


def _noqa_edit(analysis: Analysis, start: Position, code: str) -> tuple[str, types.TextEdit] | None:
    located = analysis.locate(start)
    if located is None:
        return None
    uri, position = located
    index = analysis.indexes[uri]
    line = index.line_text(position.line - 1)
    if line.rstrip().endswith("\\"):
        return None  # a comment would end the continued line
    new_line = add_noqa(line, code)
    if new_line == line:
        return None
    # Replace only the tail that changes (the comment), so the edit stays small.
    prefix = 0
    while prefix < min(len(line), len(new_line)) and line[prefix] == new_line[prefix]:
        prefix += 1
    line0 = position.line - 1
    rng = types.Range(
        start=types.Position(line=line0, character=units(line[:prefix], index.encoding)),
        end=types.Position(line=line0, character=units(line, index.encoding)),
    )
    return uri, types.TextEdit(range=rng, new_text=new_line[prefix:])


def fix_all_action(
    edits: dict[str, types.TextEdit], versions: dict[str, int | None], document_changes: bool, kind: str = FIX_ALL_KIND
) -> types.CodeAction:
    return types.CodeAction(
        title="Fix all torchsanity problems",
        kind=kind,
        edit=workspace_edit({uri: [edit] for uri, edit in edits.items()}, versions, document_changes),
    )


def hover(diagnostics: list[types.Diagnostic], position: types.Position) -> types.Hover | None:
    """The docs of every rule whose published diagnostic covers ``position``."""
    parts: list[str] = []
    hit: types.Range | None = None
    seen: set[str] = set()
    for diagnostic in diagnostics:
        code = diagnostic.code
        if not isinstance(code, str) or code in seen or not contains(diagnostic.range, position):
            continue
        rule = get_rule(code)
        if rule is None:
            continue
        seen.add(code)
        hit = hit or diagnostic.range
        parts.append(rule.docs_markdown().rstrip() + f"\n\n[{code} documentation]({docs_url(code)})")
    if not parts:
        return None
    return types.Hover(
        contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value="\n\n---\n\n".join(parts)),
        range=hit,
    )
