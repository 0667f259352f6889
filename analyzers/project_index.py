"""The project index: every module's summary (:mod:`.project_summary`) under one root, and what rules ask
of it — who calls a function (a reverse index, built per name on demand), whether those callers run with
gradients disabled, and which functions a framework calls (Lightning, HF ``Trainer``, skorch, ignite).

One index lives in each :class:`~.project.Project`; the checker's parent, which parses nothing, makes its
own over a tree on disk (:meth:`ProjectIndex.on_disk`: no libcst). Summaries come from the checker (made
with ``ast`` next to each file's analysis, kept in the cache) or are read on demand from the editor's
buffers and the disk with ``ast``; a file whose text does not mention a name is never summarised to answer
a question about that name.

The checker's workers see one file each, so there a question is *deferred*
(:func:`callers_disable_grad` answers False, provisionally, and records it); the parent, with every summary
in, settles it with :func:`settle_report`. The language server answers at once.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

from .project_summary import FLAG, OFF, ON, names_in, summarize
from .source_text import read_source
from .torch_api import CONFIG_HOOKS, CONFIG_TRAINING_RUNS

if TYPE_CHECKING:
    from .findings import FileReport
    from .project import Project

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_FILES = 20_000
_MAX_FOLDERS = 5_000  # a tree larger than this (a home folder holding one loose script) is not indexed
_MAX_FILE_BYTES = 2_000_000
_MAX_DEPTH = 8
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules", "site-packages", "venv", "build", "dist"})

# Calls that train: a module holding one may backpropagate through anything it computes.
_TRAINING_CALLS = frozenset({"backward", "step", "fit"})

# Bases whose methods no framework calls behind the project's back.
_INERT_BASES = frozenset({
    "object", "torch.nn.Module", "torch.nn.modules.module.Module", "nn.Module", "torch.utils.data.Dataset",
    "torch.utils.data.IterableDataset", "abc.ABC", "ABC", "Exception",
})
# (framework, method) -> whether the framework runs it with gradients disabled (None: not known).
_LIGHTNING = {"training_step": False, "validation_step": True, "test_step": True, "predict_step": True,
              "configure_optimizers": None, "forward": None}
_HF_TRAINER = {"compute_loss": False, "training_step": False, "prediction_step": None, "evaluate": None,
               "evaluation_loop": None, "predict": None, "create_optimizer": None, "create_scheduler": None}
_SKORCH = {"train_step": False, "train_step_single": False, "validation_step": None, "evaluation_step": None,
           "infer": None, "get_loss": None}


@dataclass(frozen=True)
class EntryPoint:
    """A function a framework calls: ``framework`` (lightning, transformers, skorch, ignite), ``kind``
    (the hook's name, or ``process-function`` / ``handler``) and ``grad_disabled`` (True when the framework
    calls it with gradients disabled, False when enabled, None when not known)."""

    framework: str
    kind: str
    grad_disabled: bool | None


def module_candidates(module: str, importer: Path, root: Path | None) -> Iterator[Path]:
    """The files that may hold ``module`` (``engine``, ``pkg.engine``, ``.engine``) imported from the
    (resolved) module file ``importer``, in the order they are looked for: next to the importer, then at
    ``root``; a relative import only from the importer's package."""
    level = len(module) - len(module.lstrip("."))
    dotted = module.lstrip(".")
    folder = importer.parent
    if level:
        bases = [folder.parents[level - 2] if level > 1 else folder]
    else:
        bases = [folder] + ([root] if root is not None else [])
    rel = Path(*dotted.split(".")) if dotted else Path()
    for base in bases:
        if dotted:
            yield base / rel.with_suffix(".py")
        yield base / rel / "__init__.py"


class OnDisk:
    """A project tree as the index reads it when no :class:`~.project.Project` is at hand (the checker's
    parent): its root and its module files on disk, no editor buffers."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).resolve()

    def overlay_text(self, path: Path) -> str | None:
        return None

    def overlay_paths(self) -> list[Path]:
        return []

    def module_file(self, module: str, importer: str) -> Path | None:
        """The file of ``module`` as imported from ``importer`` (as :meth:`.Project.module_file` finds it)."""
        return next((c for c in module_candidates(module, Path(importer).resolve(), self.root) if c.is_file()), None)


class ProjectIndex:
    """Summaries of the project's modules and the questions asked of them. ``project``: a
    :class:`~.project.Project`, or an :class:`OnDisk` tree."""

    def __init__(self, project: "Project | OnDisk") -> None:
        self.project = project
        self._given: dict[Path, tuple[dict | None, set[str]]] = {}  # from the checker: summary, names
        self._read: dict[Path, tuple[object, set[str], dict | None, bool]] = {}  # stamp, names, summary, made
        self._files: list[Path] | None = None
        self.truncated = False  # the tree was too large to list: questions about callers are not answered
        self._texts: dict[Path, str] = {}  # read, not summarised yet
        self._sites: dict[str, dict] = {}  # name -> the reverse index for that name (see _index)
        self._grouped: dict[int, tuple[dict, tuple[dict, dict, dict]]] = {}  # id(summary) -> it, grouped by name
        self._parts: dict[Path, dict] = {}  # an open buffer's top-level statements, for its next version
        self._real: dict[str, Path] = {}  # a path as given -> resolved (symlinks followed once per index)

    def _resolve_path(self, path: str | Path) -> Path:
        """``Path(path).resolve()``, remembered: questions about a long file ask it hundreds of times per edit."""
        key = str(path)
        real = self._real.get(key)
        if real is None:
            real = self._real[key] = Path(path).resolve()
        return real

    @classmethod
    def on_disk(cls, root: str | Path) -> "ProjectIndex":
        """An index of the tree under ``root`` as it is on disk, with no project that parses (no libcst)."""
        return cls(OnDisk(root))

    # ---- summaries ------------------------------------------------------------------------------

    def give(self, path: str | Path, summary: dict | None) -> None:
        """Use ``summary`` (made by the checker, or from its cache) for ``path``."""
        resolved = self._resolve_path(path)
        self._given[resolved] = (summary, names_in(summary) if summary is not None else set())
        self._sites.clear()
        self._grouped.clear()
        self._real.clear()

    def forget(self, paths: Iterable[str | Path]) -> None:
        """Read ``paths`` again when next needed (changed on disk or in an editor buffer)."""
        for path in paths:
            resolved = self._resolve_path(path)
            self._read.pop(resolved, None)
            self._texts.pop(resolved, None)
            self._given.pop(resolved, None)
            if self._files is not None and resolved not in set(self._files) and resolved.suffix == ".py":
                self._files = None  # a new module: list the tree again
        self._sites.clear()
        self._grouped.clear()
        self._real.clear()

    def files(self) -> list[Path]:
        """The project's Python files (hidden folders, virtualenvs and build output skipped), with the open
        buffers and the files the checker summarised (notebooks too)."""
        if self._files is None:
            found: list[Path] = []
            root = self.project.root
            self.truncated = False
            if root is not None:
                for count, (folder, dirs, names) in enumerate(os.walk(root)):
                    dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS
                                     and not os.path.exists(os.path.join(folder, d, "pyvenv.cfg")))
                    found.extend(Path(folder, n) for n in sorted(names) if n.endswith(".py"))
                    if len(found) > _MAX_FILES or count > _MAX_FOLDERS:
                        self.truncated = True
                        break
            self._files = found
        listed = set(self._files)
        extra = [p for p in [*self.project.overlay_paths(), *self._given] if p not in listed]  # notebooks, stdin
        return list(self._files) + list(dict.fromkeys(extra))

    def _entry(self, path: Path) -> tuple[dict | None, set[str]]:
        given = self._given.get(path)
        if given is not None:
            return given
        text = self.project.overlay_text(path)
        stamp: object = ("text", hash(text)) if text is not None else _disk_stamp(path)
        cached = self._read.get(path)
        if cached is not None and cached[0] == stamp:
            return cached[2], cached[1]
        if text is None:
            try:
                if path.stat().st_size > _MAX_FILE_BYTES:
                    raise OSError("too large")
                text = read_source(path)
            except (OSError, UnicodeDecodeError, ValueError, SyntaxError):
                self._read[path] = (stamp, set(), None, True)
                return None, set()
        names = set(_IDENTIFIER.findall(text))
        self._read[path] = (stamp, names, None, False)
        self._texts[path] = text
        return None, names

    def summary(self, path: str | Path) -> dict | None:
        """The summary of the module at ``path`` (its editor buffer's text if it is open)."""
        resolved = self._resolve_path(path)
        summary, _ = self._entry(resolved)
        if summary is not None or resolved in self._given:
            return summary
        stamp, names, made, done = self._read[resolved]
        if not done:
            text = self._texts.pop(resolved, None)
            # an editor buffer: its next version re-walks only the top-level statements an edit changed
            buffer = isinstance(stamp, tuple) and stamp[0] == "text"
            parts = self._parts.setdefault(resolved, {}) if buffer else self._parts.pop(resolved, None)
            made = summarize(text, parts if buffer else None) if text is not None else None
            self._read[resolved] = (stamp, names, made, True)
        return made

    def _mentioning(self, name: str) -> list[Path]:
        return [path for path in self.files() if name in self._entry(self._resolve_path(path))[1]]

    # ---- resolution ----------------------------------------------------------------------------

    def _lookup(self, importer: Path, dotted: str, table: str, depth: int = 0) -> tuple[Path, str] | None:
        """Where ``dotted`` (an import's target, as bound in ``importer``) defines a function or class."""
        if depth > _MAX_DEPTH:
            return None
        level = len(dotted) - len(dotted.lstrip("."))
        pieces = dotted[level:].split(".") if dotted[level:] else []
        for cut in range(len(pieces) - 1, -1 if level else 0, -1):
            module = "." * level + ".".join(pieces[:cut])
            if not module:
                continue
            found = self.project.module_file(module, str(importer))
            if found is not None:
                return self._defined(found.resolve(), ".".join(pieces[cut:]), table, depth + 1)
        return None

    def _defined(self, path: Path, name: str, table: str, depth: int) -> tuple[Path, str] | None:
        summary = self.summary(path)
        if summary is None or not name:
            return None
        if name in summary[table]:
            return path, name
        head, _, rest = name.partition(".")
        if rest and table == "functions" and head in summary["classes"]:
            return self._method(path, head, rest, depth)
        bound = summary["imports"].get(head)
        if bound is not None:  # re-exported (`from .engine import evaluate` in a package's __init__)
            return self._lookup(path, f"{bound}.{rest}" if rest else bound, table, depth + 1)
        return None

    def _class(self, path: Path, dotted: str, depth: int) -> tuple[Path, str] | None:
        summary = self.summary(path)
        if summary is None:
            return None
        if dotted in summary["classes"]:
            return path, dotted
        return self._lookup(path, dotted, "classes", depth) if "." in dotted else None

    def _method(self, path: Path, cls: str, name: str, depth: int = 0) -> tuple[Path, str] | None:
        """``cls.name`` as a method: defined in the class or in one of its project bases."""
        summary = self.summary(path)
        if summary is None or depth > _MAX_DEPTH:
            return None
        if f"{cls}.{name}" in summary["functions"]:
            return path, f"{cls}.{name}"
        for base in summary["classes"].get(cls, (0, []))[1]:
            found = self._class(path, base, depth + 1)
            if found is not None:
                method = self._method(found[0], found[1], name, depth + 1)
                if method is not None:
                    return method
        return None

    def external_bases(self, path: Path, cls: str, depth: int = 0) -> set[str]:
        """The bases of ``cls`` outside the project, through its project bases (qualified names)."""
        summary = self.summary(path)
        if summary is None or depth > _MAX_DEPTH or cls not in summary["classes"]:
            return set()
        out: set[str] = set()
        for base in summary["classes"][cls][1]:
            found = self._class(path, base, depth + 1)
            out |= self.external_bases(found[0], found[1], depth + 1) if found is not None else {base}
        return out

    def lineage(self, importer: str | Path, dotted: str, depth: int = 0) -> set[str]:
        """``dotted`` (a class as ``importer`` names it, qualified) and the qualified names of all its bases,
        followed through the project's modules."""
        out = {dotted}
        found = self._class(self._resolve_path(importer), dotted, depth) if depth <= _MAX_DEPTH else None
        if found is not None:
            for base in self.summary(found[0])["classes"][found[1]][1]:
                out |= self.lineage(found[0], base, depth + 1)
        return out

    def method_of(self, importer: str | Path, dotted: str, name: str) -> tuple[Path, str] | None:
        """Where the method ``name`` of the class ``dotted`` (as ``importer`` names it) is defined: in that class
        or in one of its project bases."""
        found = self._class(self._resolve_path(importer), dotted, 0)
        return self._method(found[0], found[1], name) if found is not None else None

    def _resolve(self, path: Path, summary: dict, dotted: str, scope: str | None) -> tuple[Path, str] | str | None:
        """The function a callee / reference means: ``(path, qualname)``, or ``"?"`` for ``x.name`` on an
        unknown receiver, or None (not a project function)."""
        parts = dotted.split(".")
        if parts[0] in ("self", "cls") and len(parts) == 2:
            cls = summary["functions"].get(scope, (0, 0, None))[2] if scope else None
            found = self._method(path, cls, parts[1]) if cls else None
            return found if found is not None else "?"
        if len(parts) == 1:
            if dotted in summary["functions"]:
                return path, dotted
            bound = summary["imports"].get(dotted)
            return self._lookup(path, bound, "functions") if bound is not None else None
        bound = summary["imports"].get(parts[0])
        if bound is not None:
            found = self._lookup(path, ".".join([bound] + parts[1:]), "functions")
            if found is not None:
                return found
        if len(parts) == 2 and parts[0] in summary["classes"]:
            return self._method(path, parts[0], parts[1])
        return "?"

    def _index(self, name: str) -> dict:
        """The reverse index for one name: ``{(path, qualname): [(path, context, scope)]}``, with the
        calls of ``x.name`` on unknown receivers under ``"?"`` and references under ``"refs"``."""
        index = self._sites.get(name)
        if index is not None:
            return index
        index = {"?": [], "refs": {}}
        for path in self._mentioning(name):
            path = self._resolve_path(path)
            if self._is_test(path):
                continue  # a test calling it says nothing about how the project runs it
            summary = self.summary(path)
            if summary is None:
                index.setdefault("unreadable", []).append(path)
                continue
            # `from engine import evaluate as ev`: `ev(...)` calls it too
            names = {name} | {local for local, bound in summary["imports"].items() if bound.rsplit(".", 1)[-1] == name}
            calls, refs, handed_all = self._by_last_name(summary)
            for callee, _line, context, scope in (c for n in names for c in calls.get(n, ())):
                target = self._resolve(path, summary, callee, scope)
                if target is not None:
                    index.setdefault(target, []).append((path, context, scope))
            for ref in (r for n in names for r in refs.get(n, ())):
                target = self._resolve(path, summary, ref, None)
                if target is not None:
                    index["refs"][target] = True
            for handed, kind, scope in (h for n in names for h in handed_all.get(n, ())):
                target = self._resolve(path, summary, handed, scope)
                if isinstance(target, tuple):
                    index.setdefault(("handed", target), []).append(kind)
        self._sites[name] = index
        return index

    def _by_last_name(self, summary: dict) -> tuple[dict, dict, dict]:
        """A summary's calls, references and handed functions grouped by the last part of their name (made once
        per summary: a long module asked about many names is scanned once)."""
        kept = self._grouped.get(id(summary))
        if kept is not None and kept[0] is summary:
            return kept[1]
        grouped: tuple[dict, dict, dict] = ({}, {}, {})
        for call in summary["calls"]:
            grouped[0].setdefault(call[0].rsplit(".", 1)[-1], []).append(call)
        for ref in summary["refs"]:
            grouped[1].setdefault(ref.rsplit(".", 1)[-1], []).append(ref)
        for handed in summary["handed"]:
            grouped[2].setdefault(handed[0].rsplit(".", 1)[-1], []).append(handed)
        self._grouped[id(summary)] = (summary, grouped)
        return grouped

    def _is_test(self, path: Path) -> bool:
        name = path.name
        if name.startswith("test_") or name.endswith("_test.py") or name == "conftest.py":
            return True
        root = self.project.root
        parts = path.relative_to(root).parts[:-1] if root is not None and path.is_relative_to(root) else ()
        return any(part in ("tests", "test") for part in parts)

    def callers(self, path: str | Path, qualname: str) -> list[tuple[Path, str, str | None]]:
        """The call sites of a function across the project: ``(file, context, enclosing function)``."""
        return list(self._index(qualname.rsplit(".", 1)[-1]).get((self._resolve_path(path), qualname), ()))

    # ---- questions -----------------------------------------------------------------------------

    def entry_point(self, path: str | Path, qualname: str) -> EntryPoint | None:
        """How a framework calls the function, when one does."""
        key = (self._resolve_path(path), qualname)
        handed = self._index(qualname.rsplit(".", 1)[-1]).get(("handed", key))
        if handed:
            return EntryPoint("ignite", "handler" if any("handler" in k for k in handed) else "process-function", False)
        cls, _, method = qualname.rpartition(".")
        if not cls or "." in cls:
            return None
        if method in CONFIG_HOOKS and self.lineage(key[0], cls) & CONFIG_TRAINING_RUNS:
            return EntryPoint("labml", method, CONFIG_HOOKS[method])
        for base in self.external_bases(key[0], cls):
            head, last = base.split(".", 1)[0], base.rsplit(".", 1)[-1]
            if head in ("pytorch_lightning", "lightning", "pl") and last == "LightningModule":
                if method in _LIGHTNING or method.endswith("_dataloader"):
                    return EntryPoint("lightning", method, _LIGHTNING.get(method))
            elif head == "transformers" and last.endswith("Trainer") and method in _HF_TRAINER:
                return EntryPoint("transformers", method, _HF_TRAINER[method])
            elif head == "skorch" and method in _SKORCH:
                return EntryPoint("skorch", method, _SKORCH[method])
        return None

    def grad_disabled(self, path: str | Path, qualname: str) -> bool | None:
        """Whether the function always runs with gradients disabled: True when every caller in the project
        disables them (or the framework that calls it does, or its decorator); False when some caller runs it
        with gradients, or nothing calls it; None when that cannot be told."""
        self.files()
        if self.truncated:
            return None
        return _Verdicts(self).of((self._resolve_path(path), qualname), ())


class _Verdicts:
    """One question's recursive walk up the callers (memoized, cycle-safe)."""

    def __init__(self, index: ProjectIndex) -> None:
        self.index = index
        self.memo: dict[tuple[Path, str], bool | None] = {}

    def of(self, key: tuple[Path, str], stack: tuple) -> bool | None | str:
        if key in stack:
            return "cycle"
        if key in self.memo:
            return self.memo[key]
        if len(stack) > _MAX_DEPTH:
            return None
        self.memo[key] = verdict = self._decide(key, stack + (key,))
        return verdict

    def _decide(self, key: tuple[Path, str], stack: tuple) -> bool | None:
        index = self.index
        summary = index.summary(key[0])
        info = summary["functions"].get(key[1]) if summary is not None else None
        if info is None:
            return None
        entry = index.entry_point(*key)
        if entry is not None:
            return entry.grad_disabled
        if info[3] == "nograd":
            return True
        if info[3] == "other":
            return None  # a decorator may hand it to someone who calls it
        if info[2] and key[1].endswith(".__call__"):
            return self._instances_called(key[0], info[2])
        reverse = index._index(key[1].rsplit(".", 1)[-1])
        if reverse.get("unreadable") or key in reverse["refs"] or (info[2] and "?" in reverse["refs"]):
            return None  # passed around as a value, or a module that mentions it cannot be read
        verdicts = [self._site(site, stack, sure=True) for site in reverse.get(key, ())]
        if info[2]:  # a method: `x.name(...)` on receivers the index cannot follow may call it
            verdicts += [self._site(site, stack, sure=False) for site in reverse["?"]]
        verdicts = [v for v in verdicts if v != "cycle"]
        if not verdicts:
            if info[2] and index.external_bases(key[0], info[2]) - _INERT_BASES:
                return None  # a framework base class may call it
            return False  # nothing calls it: judged on its own
        if False in verdicts:
            return False
        return None if None in verdicts else True

    def _instances_called(self, path: Path, cls: str) -> bool | None:
        """A ``__call__`` runs where instances of ``cls`` are called, which the index does not follow: False
        (with gradients) when neither the modules that name the class nor the modules that import those ever
        run anything with gradients disabled or under a flag, or train anything (a call may feed a loss), None
        (cannot tell) otherwise."""
        index = self.index
        if index.external_bases(path, cls) - _INERT_BASES:
            return None
        naming = [index._resolve_path(p) for p in index._mentioning(cls)]
        importing = [index._resolve_path(p) for stem in {p.stem for p in naming} for p in index._mentioning(stem)]
        for module in {*naming, *importing}:
            summary = index.summary(module)
            if summary is None or any(call[2] in (OFF, FLAG) or call[0].rsplit(".", 1)[-1] in _TRAINING_CALLS
                                      for call in summary["calls"]) \
                    or any(info[3] == "nograd" for info in summary["functions"].values()):
                return None
        return False

    def _site(self, site: tuple[Path, str, str | None], stack: tuple, sure: bool) -> bool | None | str:
        path, context, scope = site
        if context == OFF:
            return True
        if context == ON:
            return False if sure else None
        if context == FLAG or scope is None:
            return None
        verdict = self.of((path, scope), stack)
        return verdict if sure or verdict is True or verdict == "cycle" else None


def _disk_stamp(path: Path) -> object:
    try:
        stat = path.stat()
    except OSError:
        return None
    return ("disk", stat.st_mtime_ns, stat.st_size)


# ---- what rules call -------------------------------------------------------------------------------


def callers_disable_grad(project: "Project | None", path: str, function: str, code: str = "SAN202") -> bool | None:
    """Whether every caller of ``function`` (a qualname: ``evaluate``, ``Trainer.evaluate``) in the module at
    ``path`` runs it with gradients disabled, across the project: True (all do, or the framework that calls
    it does), False (some caller runs it with gradients, or nothing calls it), None (cannot tell; also
    without a project). A rule reports only on False. Where the checker defers the question (its workers
    see one file each), the answer is False for now and the findings of ``code`` inside the function are
    settled later by :func:`settle_report`."""
    if project is None or project.root is None or path in ("<string>", "-"):
        return None
    resolved = Path(path).resolve()
    if project.defer:
        project.questions.setdefault(resolved, set()).add((function, code))
        return False
    project.asked.add(resolved)
    return project.index.grad_disabled(resolved, function)


def entry_point(project: "Project | None", path: str, function: str) -> EntryPoint | None:
    """How a framework calls ``function`` of the module at ``path`` (Lightning hooks, HF ``Trainer`` and
    skorch overrides, ignite process functions and handlers), or None."""
    if project is None or project.root is None:
        return None
    return project.index.entry_point(path, function)


def settle_report(index: ProjectIndex, path: str, report: "FileReport", questions: Iterable) -> "FileReport":
    """The report of ``path`` once its deferred questions are answered with the whole project in the index:
    findings of a question's code inside its function are dropped unless the answer is False."""
    summary = index.summary(path)
    spans: list[tuple[str, int, int]] = []
    for function, code in questions:
        info = summary["functions"].get(function) if summary is not None else None
        if info is None:
            spans.append((code, 0, 1 << 30))  # cannot place it: silent, as when the answer is unknown
        elif index.grad_disabled(path, function) is not False:
            spans.append((code, info[0], info[1]))
    if spans:
        report.findings = [f for f in report.findings
                           if not any(f.code == code and first <= f.start.line <= last for code, first, last in spans)]
    return report
