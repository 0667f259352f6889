"""Cross-file resolution: helpers and classes imported from sibling modules of the same project."""

from __future__ import annotations

from pathlib import Path

import libcst as cst

from .model import ProgramModel
from .source import parse_source, read_source

_MAX_PROJECT_FILE_BYTES = 2_000_000


class Project:
    """Parses sibling modules on demand (once each) so rules can follow `from engine import fn`."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self._models: dict[Path, ProgramModel | None] = {}

    def module_file(self, module: str, importer: str) -> Path | None:
        """The file of ``module`` (``engine``, ``pkg.engine``, ``.engine``) as imported from ``importer``."""
        importer_dir = Path(importer).resolve().parent
        level = len(module) - len(module.lstrip("."))
        dotted = module.lstrip(".")
        if level:
            bases = [importer_dir.parents[level - 2] if level > 1 else importer_dir]
        else:
            bases = [importer_dir] + ([self.root] if self.root is not None else [])
        rel = Path(*dotted.split(".")) if dotted else Path()
        for base in bases:
            for candidate in (base / rel.with_suffix(".py") if dotted else None, base / rel / "__init__.py"):
                if candidate is not None and candidate.is_file():
                    return candidate
        return None

    def model_for(self, path: Path) -> ProgramModel | None:
        path = path.resolve()
        if path not in self._models:
            self._models[path] = None  # guards import cycles
            try:
                if path.stat().st_size > _MAX_PROJECT_FILE_BYTES:
                    return None
                module = parse_source(read_source(path))
            except (OSError, UnicodeDecodeError, cst.ParserSyntaxError, ValueError):
                return None
            self._models[path] = ProgramModel.build(module, str(path), project=self)
        return self._models[path]

    def resolve(self, importer: ProgramModel, local_name: str) -> tuple[ProgramModel, str] | None:
        """Follow ``local_name`` (bound by an import in ``importer``) to the module that defines it:
        returns that module's model and the name there."""
        qual = importer.imports.get(local_name)
        if not qual or "." not in qual:
            return None
        module, _, name = qual.rpartition(".")
        path = self.module_file(module, importer.path)
        if path is None:
            return None
        target = self.model_for(path)
        if target is None:
            return None
        return target, name
