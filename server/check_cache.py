"""The result cache of `torchsanity check`, in ``.torchsanity_cache/`` at the project root (like ``.ruff_cache``).

An entry holds one file's report. It is found by a key made of the file's absolute path, the resolved
configuration, the torchsanity version and a fingerprint of the engine's own source files; it is used only
when the file's content hash matches and every project module the analysis depended on (found through the
cross-file index, :meth:`Project.dependencies`) still has the hash it had, or is still absent. An entry also
keeps the file's summary for the project index and the questions its analysis asked about its callers:
those are answered afresh on every run from every file's summary, so editing a caller re-judges the
callee without analysing it again. Each entry is
written to a temporary file and moved into place with ``os.replace``, so concurrent runs never read half an
entry. Anything unreadable in the cache is a miss, never an error.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path

from ..analyzers import FileProblem, FileReport, Finding, Fix, Position, Severity, TextEdit
from ..analyzers.findings import Applicability

CACHE_DIR_NAME = ".torchsanity_cache"
_FORMAT = 3  # 2: the project index's summary and deferred questions; 3: summaries in one canonical order
_NOT_KEPT = frozenset({"internal-error", "skipped"})  # problems that say nothing lasting about the file


def file_hash(path: str | Path) -> str | None:
    """The content hash of a file; None when it cannot be read (absent)."""
    try:
        with open(path, "rb") as handle:
            return hashlib.blake2b(handle.read(), digest_size=20).hexdigest()
    except OSError:
        return None


def text_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=20).hexdigest()


def _engine_fingerprint() -> str:
    """The version plus the size and mtime of every module of the package: a changed engine is a new cache."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        parts = [version("torchsanity")]
    except PackageNotFoundError:  # pragma: no cover - run from a source tree
        parts = ["0"]
    package = Path(__file__).resolve().parent.parent
    for folder in ("analyzers", "analyzers/rules", "server"):
        for module in sorted((package / folder).glob("*.py")) if (package / folder).is_dir() else ():
            stat = module.stat()
            parts.append(f"{module.name}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.blake2b("|".join(parts).encode(), digest_size=16).hexdigest()


def project_root(start: Path) -> Path:
    """The folder of the nearest ``pyproject.toml`` at or above ``start``, else ``start``."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / "pyproject.toml").is_file():
            return candidate
    return start


def config_fingerprint(config) -> str:
    return repr((config.select, config.ignore, config.per_file_ignores, config.severity, str(config.root)))


# ---- (de)serialising reports -------------------------------------------------------------------------


def _finding_to_dict(finding: Finding) -> dict:
    data = asdict(finding)
    data["severity"] = finding.severity.value
    if finding.fix is not None:
        data["fix"]["applicability"] = finding.fix.applicability.value
    del data["path"]
    return data


def _finding_from_dict(data: dict, path: str) -> Finding:
    fix = None
    if data.get("fix") is not None:
        raw = data["fix"]
        edits = tuple(TextEdit(Position(**e["start"]), Position(**e["end"]), e["new_text"]) for e in raw["edits"])
        fix = Fix(raw["description"], edits, Applicability(raw["applicability"]))
    return Finding(data["code"], data["name"], Severity(data["severity"]), data["message"], path,
                   Position(**data["start"]), Position(**data["end"]), fix)


def report_to_dict(report: FileReport) -> dict:
    return {
        "findings": [_finding_to_dict(f) for f in report.findings],
        "problems": [{"kind": p.kind, "message": p.message, "start": asdict(p.start)} for p in report.problems],
    }


def report_from_dict(data: dict, path: str) -> FileReport:
    return FileReport(
        path=path,
        findings=[_finding_from_dict(f, path) for f in data["findings"]],
        problems=[FileProblem(path, p["kind"], p["message"], Position(**p["start"])) for p in data["problems"]],
    )


# ---- the cache -----------------------------------------------------------------------------------------


class Cache:
    """One run's view of the cache directory."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._engine = _engine_fingerprint()
        self._hashes: dict[Path, str | None] = {}

    def _hash(self, path: Path) -> str | None:
        if path not in self._hashes:
            self._hashes[path] = file_hash(path)
        return self._hashes[path]

    def _entry(self, path: str, config) -> Path:
        key = hashlib.blake2b(
            "\0".join((os.path.abspath(path), config_fingerprint(config), self._engine)).encode(), digest_size=20
        ).hexdigest()
        return self.directory / "v1" / key[:2] / f"{key}.json"

    def get(self, path: str, config, content: str | None) -> tuple[FileReport, bool, dict | None, list] | None:
        """The cached (report, skipped, summary, questions) of ``path`` when still valid. ``content``: its
        content hash."""
        if content is None:
            return None
        try:
            data = json.loads(self._entry(path, config).read_text(encoding="utf-8"))
            if data.get("format") != _FORMAT or data.get("content") != content:
                return None
            for dependency, expected in data["dependencies"].items():
                if self._hash(Path(dependency)) != expected:
                    return None
            return (report_from_dict(data["report"], path), bool(data.get("skipped")), data.get("summary"),
                    data.get("questions") or [])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, path: str, config, content: str | None, report: FileReport, skipped: bool,
            dependencies: dict | None, summary: dict | None = None, questions: list | None = None) -> None:
        """Store a result (atomically) with the file's index summary and its unsettled questions; results
        with internal errors, or skipped for their time / memory budget (a busy machine), are not kept."""
        if content is None or any(p.kind in _NOT_KEPT for p in report.problems):
            return
        deps = {str(p): (self._hash(Path(p)) if exists else None) for p, exists in (dependencies or {}).items()}
        entry = self._entry(path, config)
        data = {"format": _FORMAT, "content": content, "dependencies": deps, "skipped": skipped,
                "report": report_to_dict(report), "summary": summary, "questions": questions or []}
        try:
            self._ensure_directory()
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=entry.parent)
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as handle:
                    json.dump(data, handle, ensure_ascii=False)
                os.replace(tmp, entry)
            except BaseException:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
                raise
        except OSError:
            pass  # a read-only tree: run without a cache

    def _ensure_directory(self) -> None:
        ignore = self.directory / ".gitignore"
        if not ignore.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                with open(ignore, "x", encoding="utf-8") as handle:
                    handle.write("# Automatically created by torchsanity.\n*\n")
            except FileExistsError:
                pass
