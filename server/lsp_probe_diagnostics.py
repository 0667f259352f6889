"""A probe report's verdicts as diagnostics for people: one sentence per check (measured and expected values in
words, never a Python dict, settings where the harness names command-line flags), tied to the text of the line they point at (a diagnostic whose line changed is
dropped: it speaks of code that is gone), and linked to the static finding that explains the same failure."""

from __future__ import annotations

from pathlib import Path

from lsprotocol import types

from ..probes.report import describe
from .lsp_positions import LineIndex, units
from .probe_report import front_end_words

PROBE_SOURCE = "torchsanity-probe"

#: Probe failures and the static findings that name their cause: when both are reported in one file, the probe's
#: diagnostic says so and links to the finding.
AGREES: dict[str, tuple[str, ...]] = {
    "overfit-batch": ("SAN601", "SAN602", "SAN603"),  # a double softmax / missing log_softmax caps the fit
    "initial-loss": ("SAN601", "SAN602", "SAN603"),
    "generalization": ("SAN601", "SAN602", "SAN603"),
    "determinism": ("SAN401", "SAN402"),  # unseeded training / library RNG
}
_MAX_VALUE = 160  # characters of a measured / expected value in a diagnostic


def sentence(check: dict) -> str:
    """The check's message (naming the editor's settings where the harness names command-line flags), then what
    was measured and expected, as words and numbers."""
    message = front_end_words(str(check.get("message") or check.get("status") or "").strip(), "vscode")
    details = []
    if check.get("measured") is not None:
        details.append(f"measured {describe(check['measured'], _MAX_VALUE)}")
    if check.get("expected") is not None:
        details.append(f"expected {describe(check['expected'], _MAX_VALUE)}")
    if details:
        message += f" ({'; '.join(details)})"
    return message


def line_range(text: str | None, line: int, encoding: str) -> tuple[types.Range, str]:
    """The 1-based ``line`` without its indentation, and the line's text."""
    index = LineIndex(text or "", encoding)
    line_text = index.line_text(line - 1)
    stripped = len(line_text) - len(line_text.lstrip())
    end = units(line_text, index.encoding) if text is not None else 10_000
    rng = types.Range(start=types.Position(line=line - 1, character=units(line_text[:stripped], index.encoding)),
                      end=types.Position(line=line - 1, character=end))
    return rng, line_text.rstrip("\r\n")


def diagnostic(check: dict, line: int, severity: types.DiagnosticSeverity, text: str | None, encoding: str,
               data: dict | None = None) -> types.Diagnostic:
    """The check's diagnostic on ``line`` of ``text`` (the document as the client has it)."""
    rng, line_text = line_range(text, line, encoding)
    return types.Diagnostic(
        range=rng,
        message=sentence(check),
        severity=severity,
        code=str(check.get("id", "probe")),
        source=PROBE_SOURCE,
        data={"status": check.get("status"), "lineText": line_text if text is not None else None, **(data or {})},
    )


def with_agreement(diag: types.Diagnostic, uri: str, static: list[types.Diagnostic]) -> types.Diagnostic:
    """``diag``, saying so and linking to them when static findings in the same document name its cause."""
    codes = AGREES.get(str(diag.code), ())
    if (diag.data or {}).get("status") not in ("fail", "warn") or not codes:
        return diag
    agreeing = [s for s in static if s.code in codes and s.source != PROBE_SOURCE]
    if not agreeing:
        return diag
    first = agreeing[0]
    where = f"line {first.range.start.line + 1}"
    message = f"{diag.message} — the static check {first.code} ({where}) finds the same cause: {first.message}"
    related = [types.DiagnosticRelatedInformation(location=types.Location(uri=uri, range=s.range),
                                                  message=f"{s.code}: {s.message}") for s in agreeing]
    return types.Diagnostic(range=diag.range, message=message, severity=diag.severity, code=diag.code,
                            source=diag.source, related_information=related,
                            data={**(diag.data or {}), "agrees": [s.code for s in agreeing]})


def still_current(diag: types.Diagnostic, text: str, encoding: str) -> bool:
    """Whether the line ``diag`` points at still reads as when the probe ran (diagnostics without a recorded
    line text are kept)."""
    recorded = (diag.data or {}).get("lineText") if isinstance(diag.data, dict) else None
    if recorded is None:
        return True
    return LineIndex(text, encoding).line_text(diag.range.start.line).rstrip("\r\n") == recorded


def same_line_as_run(diag: types.Diagnostic, path: str, encoding: str) -> bool:
    """Whether the line ``diag`` was placed on (in the buffer) reads as in the file the probe ran (on disk);
    True when the file cannot be read."""
    try:
        ran = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return True
    return still_current(diag, ran, encoding)
