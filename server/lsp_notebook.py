"""Notebook cells as one program.

The code cells of a notebook are joined, in order, into one Python text (a training loop in cell 5 uses
the optimizer built in cell 3), each preceded by a marker comment line. Findings are mapped back to the
cell and line they start on; fixes are mapped edit by edit (a fix whose edit crosses a cell boundary is
not offered); fix-all splits the fixed text at the markers.

IPython syntax that is not Python is neutralised line by line, keeping the line count: line magics and
shell escapes (``%matplotlib inline``, ``!pip install x``) become ``pass`` with the original kept aside,
and cells that start with a cell magic (``%%bash``, ``%%time``) are left out of the program.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..analyzers import Position

MARKER_PREFIX = "# torchsanity-cell "
_MAGIC = re.compile(r"^(\s*)([%!].*)$")
_MARKER = re.compile(r"^# torchsanity-cell (\d+)$")


@dataclass
class CellSpan:
    uri: str
    index: int  # position among the notebook's cells
    first_line: int  # 1-based line of the cell's first line in the combined text
    line_count: int
    text: str  # the cell's text as the client has it
    ends_with_newline: bool
    is_python: bool = True


@dataclass
class CombinedNotebook:
    text: str
    cells: list[CellSpan]
    magics: dict[str, str] = field(default_factory=dict)  # placeholder line -> original line

    def cell_at(self, line: int) -> tuple[CellSpan, int] | None:
        """The cell that combined line ``line`` (1-based) belongs to, and the 1-based line in it."""
        for cell in self.cells:
            if cell.first_line <= line < cell.first_line + cell.line_count:
                return cell, line - cell.first_line + 1
        return None

    def to_cell(self, position: Position) -> tuple[CellSpan, Position] | None:
        found = self.cell_at(position.line)
        if found is None:
            return None
        cell, line = found
        return cell, Position(line, position.column)

    def cell(self, uri: str) -> CellSpan | None:
        return next((c for c in self.cells if c.uri == uri), None)

    def split_fixed(self, fixed: str) -> dict[str, str] | None:
        """The text of each cell in ``fixed`` (a fixed version of :attr:`text`); None when the markers
        did not survive (then fix-all is not offered)."""
        parts: dict[int, list[str]] = {}
        current: int | None = None
        for line in fixed.split("\n"):
            match = _MARKER.match(line)
            if match:
                current = int(match.group(1))
                parts[current] = []
                continue
            if current is None:
                if line.strip():
                    return None
                continue
            parts[current].append(self.magics.get(line, line))
        if sorted(parts) != [c.index for c in self.cells]:
            return None
        out: dict[str, str] = {}
        for cell in self.cells:
            if not cell.is_python:
                out[cell.uri] = cell.text
                continue
            lines = parts[cell.index]
            # The combined text ends every cell with a newline; give back the cell's own ending.
            if lines and lines[-1] == "":
                lines = lines[:-1]
            text = "\n".join(lines)
            if cell.ends_with_newline:
                text += "\n"
            out[cell.uri] = text
        return out


def combine(cells: list[tuple[str, str]]) -> CombinedNotebook:
    """``cells``: (uri, text) of the notebook's Python code cells, in order."""
    chunks: list[str] = []
    spans: list[CellSpan] = []
    magics: dict[str, str] = {}
    line = 1
    for index, (uri, text) in enumerate(cells):
        lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
        ends_with_newline = text.endswith(("\n", "\r"))
        if ends_with_newline:
            lines = lines[:-1]
        first = next((ln for ln in lines if ln.strip()), "")
        is_python = not first.lstrip().startswith("%%")
        if not is_python:
            lines = ["" for _ in lines]  # a cell magic: not Python, keep the line count
        else:
            for i, ln in enumerate(lines):
                match = _MAGIC.match(ln)
                if match:
                    placeholder = f"{match.group(1)}pass  # torchsanity-magic {len(magics)}"
                    magics[placeholder] = ln
                    lines[i] = placeholder
        chunks.append(f"{MARKER_PREFIX}{index}\n")
        line += 1
        chunks.append("".join(ln + "\n" for ln in lines))
        spans.append(CellSpan(uri, index, line, max(len(lines), 1), text, ends_with_newline, is_python))
        line += len(lines)
    return CombinedNotebook("".join(chunks), spans, magics)
