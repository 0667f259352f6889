"""The values the engine hands to its front ends: findings, fixes and text edits.

Positions are those of libcst's PositionProvider: lines are 1-based, columns are 0-based and count
Unicode code points (front ends convert: the CLI prints 1-based columns, the LSP server UTF-16 units).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import Enum


class Severity(str, Enum):
    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True, order=True)
class Position:
    line: int  # 1-based
    column: int  # 0-based, code points


@dataclass(frozen=True)
class TextEdit:
    """Replace the text between ``start`` and ``end`` (end exclusive) with ``new_text``."""

    start: Position
    end: Position
    new_text: str


class Applicability(str, Enum):
    """Whether a fix may be applied without asking (ruff's terms).

    - ``SAFE``: the code keeps its behaviour apart from the bug the finding names; ``--fix`` and the
      editor's fix-all apply it.
    - ``UNSAFE``: the fix also changes behaviour the author may rely on (a different optimizer, a
      seed, a shuffled loader, other tensor values); applied only with ``--unsafe-fixes``, offered in
      the editor as a quick fix that is not preferred.
    """

    SAFE = "safe"
    UNSAFE = "unsafe"


@dataclass(frozen=True)
class Fix:
    """A self-contained change that removes one finding, verified before it is offered (see
    :mod:`~torchsanity.analyzers.fix_verify`)."""

    description: str
    edits: tuple[TextEdit, ...]
    applicability: Applicability = Applicability.SAFE

    @property
    def is_safe(self) -> bool:
        return self.applicability is Applicability.SAFE


@dataclass(frozen=True)
class Finding:
    code: str
    name: str
    severity: Severity
    message: str
    path: str
    start: Position
    end: Position
    fix: Fix | None = None

    def with_path(self, path: str) -> "Finding":
        return replace(self, path=path)

    def to_json(self) -> dict:
        """The public JSON shape of DESIGN.md §4 (1-based lines and columns)."""
        data = {
            "path": self.path,
            "line": self.start.line,
            "column": self.start.column + 1,
            "end_line": self.end.line,
            "end_column": self.end.column + 1,
            "code": self.code,
            "name": self.name,
            "severity": self.severity.value,
            "message": self.message,
        }
        if self.fix is not None:
            data["fix"] = {
                "applicability": self.fix.applicability.value,
                "description": self.fix.description,
                "edits": [
                    {
                        "line": e.start.line,
                        "column": e.start.column + 1,
                        "end_line": e.end.line,
                        "end_column": e.end.column + 1,
                        "new_text": e.new_text,
                    }
                    for e in self.fix.edits
                ],
            }
        return data


PROBLEM_CODE = "SAN000"


@dataclass(frozen=True)
class FileProblem:
    """Something that kept (part of) the analysis of a file from running: a syntax error, an
    unreadable file, or a rule that raised. Reported once, never as a traceback."""

    path: str
    kind: str  # "syntax-error" | "unreadable" | "skipped" (over its budget, crashed) | "internal-error"
    message: str
    start: Position = Position(1, 0)

    @property
    def code(self) -> str:
        """Every file-level problem reports as SAN000."""
        return PROBLEM_CODE


@dataclass
class FileReport:
    path: str
    findings: list[Finding] = field(default_factory=list)
    problems: list[FileProblem] = field(default_factory=list)
