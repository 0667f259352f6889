"""Jupyter notebooks (``.ipynb``) as one Python program: a pure reader and position mapper.

The code cells are joined, in order, into one text (a training loop in cell 5 uses the optimizer built in
cell 3). Every line keeps its place: IPython lines that are not Python (line magics ``%time``, shell
escapes ``!pip install x``) become blank lines (``pass`` when indented, so a block stays a block), and a
cell that starts with a cell magic (``%%bash``) contributes only blank lines. Positions in the joined text
map back to (cell, line in cell) with :meth:`Notebook.locate`.
"""

from __future__ import annotations

import bisect
import json
import re
from dataclasses import dataclass

_MAGIC = re.compile(r"^(\s*)[%!]")


class NotebookError(ValueError):
    """The file is not a notebook this reader understands (the message says why)."""


@dataclass(frozen=True)
class Cell:
    number: int  # 1-based among the code cells (what `path:cell N:…` shows)
    index: int  # 0-based position among all of the notebook's cells
    first_line: int  # 1-based line of the cell's first line in the joined text
    line_count: int


@dataclass(frozen=True)
class Notebook:
    text: str  # the code cells joined into one program
    cells: tuple[Cell, ...]
    is_python: bool = True  # False: another kernel's language (nothing to check)

    def locate(self, line: int) -> tuple[Cell, int] | None:
        """The cell holding joined line ``line`` (1-based) and the 1-based line within it."""
        starts = [c.first_line for c in self.cells]
        i = bisect.bisect_right(starts, line) - 1
        if i < 0:
            return None
        cell = self.cells[i]
        if line >= cell.first_line + cell.line_count:
            return None
        return cell, line - cell.first_line + 1


def _cell_source(cell: dict) -> str:
    source = cell.get("source", "")
    if isinstance(source, list):
        if not all(isinstance(part, str) for part in source):
            raise NotebookError("a cell's source is not text")
        return "".join(source)
    if not isinstance(source, str):
        raise NotebookError("a cell's source is not text")
    return source


def _python_lines(source: str) -> list[str]:
    lines = source.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    first = next((line for line in lines if line.strip()), "")
    if first.lstrip().startswith("%%"):
        return ["" for _ in lines]
    out = []
    for line in lines:
        match = _MAGIC.match(line)
        if match:
            out.append(f"{match.group(1)}pass" if match.group(1) else "")
        else:
            out.append(line)
    return out


def _language(data: dict) -> str | None:
    metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
    for key in ("language_info", "kernelspec"):
        info = metadata.get(key)
        if isinstance(info, dict):
            name = info.get("name") if key == "language_info" else info.get("language")
            if isinstance(name, str) and name:
                return name.lower()
    return None


def parse_notebook(raw: str) -> Notebook:
    """The program of a notebook's JSON text; raises :class:`NotebookError` when it is not a notebook."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, RecursionError) as error:
        raise NotebookError(f"not valid notebook JSON ({error})") from None
    if not isinstance(data, dict) or not isinstance(data.get("cells"), list):
        raise NotebookError("not a Jupyter notebook (no list of cells)")
    language = _language(data)
    chunks: list[str] = []
    cells: list[Cell] = []
    line = 1
    number = 0
    for index, cell in enumerate(data["cells"]):
        if not isinstance(cell, dict):
            raise NotebookError("a cell is not an object")
        if cell.get("cell_type") != "code":
            continue
        number += 1
        lines = _python_lines(_cell_source(cell))
        cells.append(Cell(number, index, line, max(len(lines), 1)))
        if not lines:
            lines = [""]
        chunks.append("".join(f"{text}\n" for text in lines))
        line += len(lines)
    return Notebook("".join(chunks), tuple(cells), language in (None, "python", "python3", "ipython"))


# ---- writing fixes back ------------------------------------------------------------------------------

_MARKER = re.compile(r"^# torchsanity-cell (\d+)$")
_PLACEHOLDER = re.compile(r"^(\s*)pass  # torchsanity-magic (\d+)$")


@dataclass(frozen=True)
class MarkedNotebook:
    """A notebook's code cells joined for fixing: each cell after a ``# torchsanity-cell N`` line, magic
    lines as numbered ``pass`` placeholders, so that fixed text can be split back into cells."""

    data: dict
    text: str
    magics: tuple[str, ...]
    indexes: tuple[int, ...]  # the notebook index of each code cell, in order
    indent: int | None = 1  # the JSON layout of the file, kept when writing back
    final_newline: bool = True

    def write_back(self, fixed: str) -> str | None:
        """The notebook's JSON with the cells of ``fixed``; None when the cell markers did not survive."""
        parts: dict[int, list[str]] = {}
        current = None
        for line in fixed.split("\n"):
            match = _MARKER.match(line)
            if match:
                current = int(match.group(1))
                parts[current] = []
            elif current is not None:
                placeholder = _PLACEHOLDER.match(line)
                parts[current].append(self.magics[int(placeholder.group(2))] if placeholder else line)
            elif line.strip():
                return None
        if sorted(parts) != sorted(self.indexes):
            return None
        data = json.loads(json.dumps(self.data))
        for index in self.indexes:
            cell = data["cells"][index]
            lines = parts[index]
            if lines and lines[-1] == "":
                lines = lines[:-1]
            original = _cell_source(cell)
            text = "\n".join(lines) + ("\n" if original.endswith("\n") and lines else "")
            if text != original:
                cell["source"] = text.splitlines(keepends=True)
        return json.dumps(data, indent=self.indent, ensure_ascii=False) + ("\n" if self.final_newline else "")


def mark_notebook(raw: str) -> MarkedNotebook:
    """The text to fix for a notebook (see :class:`MarkedNotebook`); raises :class:`NotebookError`."""
    parse_notebook(raw)  # validates
    data = json.loads(raw)
    chunks: list[str] = []
    magics: list[str] = []
    indexes: list[int] = []
    for index, cell in enumerate(data["cells"]):
        if cell.get("cell_type") != "code":
            continue
        indexes.append(index)
        source = _cell_source(cell).replace("\r\n", "\n").replace("\r", "\n")
        lines = source.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        chunks.append(f"# torchsanity-cell {index}\n")
        first = next((line for line in lines if line.strip()), "")
        for line in lines:
            match = _MAGIC.match(line)
            if first.lstrip().startswith("%%") or match:
                indent = match.group(1) if match else ""
                chunks.append(f"{indent}pass  # torchsanity-magic {len(magics)}\n")
                magics.append(line)
            else:
                chunks.append(line + "\n")
    lines = raw.split("\n", 2)
    indent = len(lines[1]) - len(lines[1].lstrip(" ")) if len(lines) > 1 and lines[0].strip() == "{" else None
    return MarkedNotebook(data, "".join(chunks), tuple(magics), tuple(indexes), indent or None, raw.endswith("\n"))
