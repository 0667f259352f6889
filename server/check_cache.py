"""The result cache of `torchsanity check`, in ``.torchsanity_cache/`` at the project root (like ``.ruff_cache``).

One index per engine holds every file's entry, in 16 shards (files) by key, so a run reads the cache with
at most 16 ``open`` calls and rewrites only the shards that changed. An entry is found by a key made of the
file's absolute path and the resolved configuration; the index's folder is named by a fingerprint of the
torchsanity version and of the engine's own source files. An entry is used only when
the file's content hash matches and every project module the analysis depended on (found through the
cross-file index, :meth:`Project.dependencies`) still has the hash it had, or is still absent. An entry
also keeps the file's summary for the project index and the questions its analysis asked about its
callers: those are answered afresh on every run from every file's summary, so editing a caller re-judges
the callee without analysing it again.

The run's new entries are written once, at the end: each shard they fall in is merged with the shard as
it is then (read again when another run replaced it meanwhile) and written to a temporary file moved into
place with ``os.replace``, so concurrent runs never read half a shard (the last writer wins; an entry it
lacks is a miss next time).
Anything unreadable in the cache is a miss, never an error. No libcst here: a run answered from the cache
never imports it. What depends on the engine alone (SARIF's rule entries, made from the rule classes) is
kept in the index's folder too (:meth:`Cache.derived`), so such a run needs no rule class either.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from ..analyzers.findings import Applicability, FileProblem, FileReport, Finding, Fix, Position, Severity, TextEdit

CACHE_DIR_NAME = ".torchsanity_cache"
# 2: the project index's summary and deferred questions; 3: summaries in one canonical order; 4: one index
_FORMAT = 4
_KEPT_INDEXES = 4  # indexes of other engines (versions, edited sources) beyond this many are removed
_SHARD_DIGITS = 1  # the index is split by the first hex digit of the key: 16 files, a run rewrites those it changed
_NOT_KEPT = frozenset({"internal-error", "skipped"})  # problems that say nothing lasting about the file
_DERIVED = "derived"  # the index folder's subfolder of what depends on the engine alone


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
    from . import __version__

    parts = [__version__]
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
    """One run's view of the cache directory: a shard of the index is read on the first lookup of a key
    in it, new entries are kept in memory and written by :meth:`save`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.index_dir = directory / f"index-{_engine_fingerprint()}"
        # shard -> (its entries, the file as it was when read: None when absent or unreadable)
        self._shards: dict[str, tuple[dict[str, dict], tuple | None]] = {}
        self._new: dict[str, dict] = {}
        self._hashes: dict[str, str | None] = {}

    def _hash(self, path: str) -> str | None:
        if path not in self._hashes:
            self._hashes[path] = file_hash(path)
        return self._hashes[path]

    @staticmethod
    def _key(path: str, config) -> str:
        return hashlib.blake2b("\0".join((os.path.abspath(path), config_fingerprint(config))).encode(),
                               digest_size=20).hexdigest()

    def _read_shard(self, shard: str) -> tuple[dict[str, dict], tuple | None]:
        """A shard's entries on disk now; an absent, unreadable or foreign one is empty."""
        try:
            with open(self.index_dir / f"{shard}.json", "rb") as handle:
                stamp = _stamp(os.fstat(handle.fileno()))
                data = json.loads(handle.read())
            entries = data["entries"] if data.get("format") == _FORMAT else {}
            return (entries, stamp) if isinstance(entries, dict) else ({}, stamp)
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return {}, None

    def get(self, path: str, config, content: str | None) -> tuple[FileReport, bool, dict | None, list] | None:
        """The cached (report, skipped, summary, questions) of ``path`` when still valid. ``content``: its
        content hash."""
        if content is None:
            return None
        key = self._key(path, config)
        shard = key[:_SHARD_DIGITS]
        if shard not in self._shards:
            self._shards[shard] = self._read_shard(shard)
        data = self._shards[shard][0].get(key)
        try:
            if data is None or data["content"] != content:
                return None
            for dependency, expected in data["dependencies"]:
                if self._hash(dependency) != expected:
                    return None
            return (report_from_dict(data["report"], path), bool(data.get("skipped")), data.get("summary"),
                    data.get("questions") or [])
        except (ValueError, KeyError, TypeError, AttributeError):
            return None

    def put(self, path: str, config, content: str | None, report: FileReport, skipped: bool,
            dependencies: dict | None, summary: dict | None = None, questions: list | None = None) -> None:
        """Keep a result, with the file's index summary and its unsettled questions, for :meth:`save`;
        results with internal errors, or skipped for their time / memory budget (a busy machine), are not
        kept."""
        if content is None or any(p.kind in _NOT_KEPT for p in report.problems):
            return
        deps = [[str(p), self._hash(str(p)) if exists else None] for p, exists in (dependencies or {}).items()]
        self._new[self._key(path, config)] = {
            "path": os.path.abspath(path), "content": content, "dependencies": deps, "skipped": skipped,
            "report": report_to_dict(report), "summary": summary, "questions": questions or []}

    def save(self) -> None:
        """Write the new entries into the shards they belong to, each atomically: merged with the shard as
        it is now (read again if another run replaced it meanwhile, so its entries are kept); entries of
        files that no longer exist are dropped from the shards written."""
        if not self._new:
            return
        by_shard: dict[str, dict[str, dict]] = {}
        for key, entry in self._new.items():
            by_shard.setdefault(key[:_SHARD_DIGITS], {})[key] = entry
        self._new = {}
        try:
            self._ensure_directory()
            self.index_dir.mkdir(exist_ok=True)
            for shard, new in by_shard.items():
                self._write_shard(shard, new)
            self._remove_old_indexes()
        except OSError:
            pass  # a read-only tree: run without a cache

    def _write_shard(self, shard: str, new: dict[str, dict]) -> None:
        path = self.index_dir / f"{shard}.json"
        entries, stamp = self._shards.get(shard, ({}, None))
        try:
            unchanged = stamp is not None and _stamp(os.stat(path)) == stamp
        except OSError:
            unchanged = False
        entries = dict(entries) if unchanged else self._read_shard(shard)[0]
        entries.update(new)
        entries = {key: entry for key, entry in entries.items()
                   if isinstance(entry, dict) and os.path.exists(str(entry.get("path")))}
        _replace(path, {"format": _FORMAT, "entries": entries})

    def derived(self, name: str, build: Callable[[], object], valid: Callable[[object], bool]) -> object:
        """A JSON value that depends on the engine alone (``build`` makes it), kept in the index's folder
        (named by the engine's sources, so it holds as long as the index does): read when it is there and
        ``valid``, else built and kept."""
        try:
            with open(self.index_dir / _DERIVED / f"{name}.json", "rb") as handle:
                value = json.loads(handle.read())
            if valid(value):
                return value
        except (OSError, ValueError):
            pass
        value = build()
        self._keep(name, value)
        return value

    def keep_derived(self, name: str, build: Callable[[], object]) -> None:
        """Build and keep ``name`` for :meth:`derived` unless it is kept already (a run that loaded the
        engine anyway prepares the next, answered from the cache, in another format)."""
        if not (self.index_dir / _DERIVED / f"{name}.json").is_file():
            self._keep(name, build())

    def _keep(self, name: str, value: object) -> None:
        try:
            self._ensure_directory()
            (self.index_dir / _DERIVED).mkdir(parents=True, exist_ok=True)
            _replace(self.index_dir / _DERIVED / f"{name}.json", value)
        except (OSError, ValueError):
            pass  # a read-only tree (or text JSON cannot hold): built again next time

    def _remove_old_indexes(self) -> None:
        """Keep the indexes of the few engines used last (another install, an edited engine); remove the
        rest, and the per-file entries of format 3."""
        import shutil

        others = sorted((p for p in self.directory.glob("index-*") if p != self.index_dir), key=_mtime, reverse=True)
        for old in others[_KEPT_INDEXES - 1:]:
            if old.is_dir():
                shutil.rmtree(old, ignore_errors=True)
            else:
                try:
                    old.unlink()
                except OSError:
                    pass
        if (self.directory / "v1").is_dir():
            shutil.rmtree(self.directory / "v1", ignore_errors=True)

    def _ensure_directory(self) -> None:
        ignore = self.directory / ".gitignore"
        if not ignore.exists():
            self.directory.mkdir(parents=True, exist_ok=True)
            try:
                with open(ignore, "x", encoding="utf-8") as handle:
                    handle.write("# Automatically created by torchsanity.\n*\n")
            except FileExistsError:
                pass


def _replace(path: Path, value: object) -> None:
    """Write ``value`` as JSON to ``path`` atomically: a temporary file in its folder, moved into place."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:  # dumps: json's C encoder, unlike dump
            handle.write(json.dumps(value, ensure_ascii=False))
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _stamp(stat: os.stat_result) -> tuple:
    return stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
