"""Cross-file resolution: helpers and classes imported from sibling modules of the same project.

A :class:`Project` parses each sibling module once and records which module files every analysis looked
for. It holds the project index (:class:`~.project_index.ProjectIndex`: who calls what, and how). An editor
keeps one per workspace folder: :meth:`Project.set_overlay` puts the open buffers' unsaved text in place of
their files, and :meth:`Project.invalidate` forgets what a changed file (and everything that read it)
contributed.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Iterable, Mapping

import libcst as cst

from .model import ProgramModel
from .project_index import ProjectIndex, module_candidates
from .source import parse_source
from .source_text import read_source

_MAX_PROJECT_FILE_BYTES = 2_000_000


class Project:
    """Parses sibling modules on demand (once each) so rules can follow `from engine import fn`."""

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root).resolve() if root is not None else None
        self._models: dict[Path, ProgramModel | None] = {}
        self._texts: dict[Path, str] = {}  # module files read for :meth:`may_define` (not parsed)
        self._defines: dict[tuple[Path, str], bool] = {}
        self._edges: dict[Path, dict[Path, bool]] = {}  # importer -> {module file looked for: exists}
        # Set by a checker that isolates parsing: told (path, True) before a sibling module is parsed and
        # (path, False) after; modules in ``avoid`` are never parsed (they crashed or overran a worker).
        self.watch: Callable[[Path, bool], None] | None = None
        self.avoid: frozenset[Path] = frozenset()
        self._overlay: dict[Path, str] = {}  # open buffers: their text replaces their file
        self._resolved: dict[str, Path] = {}  # path as given -> resolved path (overlay keys)
        self.index = ProjectIndex(self)
        # A checker whose workers see one file each sets ``defer``: questions about callers are recorded in
        # ``questions`` ({file: {(function, code)}}) and settled once every file's summary is in.
        self.defer = False
        self.questions: dict[Path, set[tuple[str, str]]] = {}
        self.asked: set[Path] = set()  # files whose analysis asked the index about their callers

    def set_overlay(self, texts: Mapping[str, str]) -> None:
        """Read ``texts`` (``{path: text}``, an editor's open buffers) instead of those files on disk;
        a path whose text changed, appeared or left the overlay is invalidated."""
        overlay = {self._resolve(path): text for path, text in texts.items()}
        previous = self._overlay
        changed = [path for path in overlay.keys() | previous.keys() if overlay.get(path) != previous.get(path)]
        self._overlay = overlay
        if changed:
            self.invalidate(changed)

    def overlay_text(self, path: Path) -> str | None:
        """The open buffer's text of the (resolved) ``path``, if it is open."""
        return self._overlay.get(path)

    def overlay_paths(self) -> list[Path]:
        return [path for path in self._overlay if path.suffix == ".py"]

    def invalidate(self, paths: Iterable[str | Path]) -> None:
        """Forget the models of ``paths`` and of every module whose resolution looked for one of them
        (directly or through other modules), with what they looked for: they are read again on demand."""
        stale = {self._resolve(path) for path in paths}
        self.index.forget(stale)
        importers: dict[Path, list[Path]] = {}
        for importer, looked in self._edges.items():
            for candidate in looked:
                importers.setdefault(candidate, []).append(importer)
        pending = list(stale)
        while pending:
            for importer in importers.get(pending.pop(), ()):
                if importer not in stale:
                    stale.add(importer)
                    pending.append(importer)
        for path in stale:
            self._models.pop(path, None)
            self._texts.pop(path, None)
            self._edges.pop(path, None)
            self.asked.discard(path)
        if stale:
            self._defines = {key: value for key, value in self._defines.items() if key[0] not in stale}

    def _resolve(self, path: str | Path) -> Path:
        key = str(path)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = self._resolved[key] = Path(path).resolve()
        return resolved

    def dependencies(self, path: str | Path) -> dict[Path, bool]:
        """Every project file the analysis of ``path`` may have read, directly or through the modules it
        imports: ``{path: exists}`` for each module file looked for (found or not), so a cache can tell
        when a change to a sibling module (or a new one) invalidates the result. An analysis that asked
        the index about its callers depends on every module of the project (any of them may call)."""
        seen: dict[Path, bool] = {}
        pending = [Path(path).resolve()]
        if pending[0] in self.asked:
            seen.update((file.resolve(), True) for file in self.index.files())
        while pending:
            for candidate, exists in self._edges.get(pending.pop(), {}).items():
                if candidate not in seen:
                    seen[candidate] = exists
                    if exists:
                        pending.append(candidate)
        return seen

    def module_file(self, module: str, importer: str) -> Path | None:
        """The file of ``module`` (``engine``, ``pkg.engine``, ``.engine``) as imported from ``importer``."""
        importer_path = self._resolve(importer)
        looked = self._edges.setdefault(importer_path, {})
        for candidate in module_candidates(module, importer_path, self.root):
            resolved = self._resolve(candidate)
            found = resolved in self._overlay or candidate.is_file()
            looked[resolved] = found
            if found:
                return candidate
        return None

    def may_define(self, path: Path, function: str) -> bool:
        """False when the module file ``path`` surely holds no ``def function`` (a search of its text, no
        parse), so a caller that only wants that function need not parse the module; True otherwise."""
        path = self._resolve(path)
        if path in self._models:
            return True
        key = (path, function)
        known = self._defines.get(key)
        if known is None:
            text = self._overlay.get(path, self._texts.get(path))
            if text is None:
                try:
                    if path.stat().st_size > _MAX_PROJECT_FILE_BYTES:
                        return True  # model_for declines it
                    text = self._texts[path] = read_source(path)
                except (OSError, ValueError):
                    return True  # model_for declines it
            known = self._defines[key] = re.search(rf"\bdef[\s\\]+{re.escape(function)}", text) is not None
        return known

    def model_for(self, path: Path) -> ProgramModel | None:
        """The program model of the module file ``path`` (its overlay text if it has one); None when it
        cannot be read or parsed."""
        path = self._resolve(path)
        if path not in self._models:
            self._models[path] = None  # guards import cycles
            if path in self.avoid:
                return None
            if self.watch is not None:
                self.watch(path, True)
            try:
                text = self._overlay.get(path)
                if text is None and path.stat().st_size > _MAX_PROJECT_FILE_BYTES:
                    return None
                if text is None:
                    text = read_source(path)
                elif len(text) > _MAX_PROJECT_FILE_BYTES:
                    return None
                module = parse_source(text)
            except (OSError, UnicodeDecodeError, cst.ParserSyntaxError, ValueError):
                return None
            finally:
                if self.watch is not None:
                    self.watch(path, False)
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
