"""The analysis of a text that keeps changing: an editor's buffer.

Each new version is reparsed from the last version that parsed (:meth:`ParsedSource.reparse`: only the
edited top-level statements are parsed again) and the program model re-walks only those statements;
what depends only on unchanged code is kept too (per-statement results, :meth:`ProgramModel.per_statement`;
each function's effects, :mod:`~torchsanity.analyzers.flow_reuse`), each with an explicit dependency key;
the rules then run on the whole model as usual, and the findings in untouched statements are placed from
positions kept since the last version (:class:`~torchsanity.analyzers.positions.StatementPositions`), so
the findings are exactly those of :func:`~torchsanity.analyzers.engine.analyze_source` on the same text.
"""

from __future__ import annotations

from typing import Sequence

from .config import Config
from .engine import PARSE_ERRORS, analyze_program, parse_problem
from .findings import FileReport
from .model import ProgramModel
from .parsed import ParsedSource
from .positions import StatementPositions
from .project import Project
from .rule import Rule


class LiveDocument:
    """One buffer's analyses, each built on the last one that parsed."""

    def __init__(self) -> None:
        self._parsed: ParsedSource | None = None
        self._program: ProgramModel | None = None
        self._positions = StatementPositions()

    def analyze(
        self,
        text: str,
        path: str = "<string>",
        config: Config | None = None,
        project: Project | None = None,
        rules: Sequence[type[Rule]] | None = None,
    ) -> FileReport:
        """Every enabled rule's findings on ``text``; never raises on user input."""
        try:
            parsed = self._parse(text)
        except PARSE_ERRORS as error:
            return FileReport(path=path, problems=[parse_problem(path, error, text)])
        program = ProgramModel.build(parsed.module, path, project=project, reuse=self._program)
        self._parsed, self._program = parsed, program
        self._positions.keep(parsed.module)
        return analyze_program(program, text, config, rules, parsed.statement_lines, self._positions)

    @property
    def model(self) -> ProgramModel | None:
        """The program model of the last text that parsed (``model`` for the server's sake: it is the
        program, not the network)."""
        return self._program

    @property
    def parsed(self) -> ParsedSource | None:
        """The parse of the last text that parsed."""
        return self._parsed

    def _parse(self, text: str) -> ParsedSource:
        if self._parsed is None:
            return ParsedSource.parse(text)
        try:
            return self._parsed.reparse(text)
        except PARSE_ERRORS:
            raise
        except Exception:  # noqa: BLE001 - a flaw in the incremental path must not cost the analysis
            self._parsed = self._program = None
            return ParsedSource.parse(text)
