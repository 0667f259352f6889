"""`[tool.torchsanity]` configuration: select, ignore, per-file-ignores, exclude, severity.

Codes may be given by prefix as in ruff (``SAN1`` = every SAN1xx rule; ``ALL`` = every rule).
Project configuration is read from the nearest ``pyproject.toml`` and can be overridden by editor
settings or CLI flags through :meth:`Config.overridden`.
"""

from __future__ import annotations

import fnmatch
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

from .findings import Severity


class ConfigError(ValueError):
    """The project's configuration cannot be used; the message says where and why."""


def _matches(code: str, patterns: tuple[str, ...]) -> bool:
    return any(p == "ALL" or code.startswith(p) for p in patterns)


@dataclass(frozen=True)
class Config:
    select: tuple[str, ...] = ("ALL",)
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = ()
    severity: tuple[tuple[str, Severity], ...] = ()
    root: Path | None = field(default=None, compare=False)

    # ---- loading --------------------------------------------------------------------------------

    @classmethod
    def discover(cls, start: str | Path) -> "Config":
        """The configuration of the nearest ``pyproject.toml`` with a ``[tool.torchsanity]`` table
        at or above ``start``; defaults when there is none."""
        start = Path(start).resolve()
        directory = start if start.is_dir() else start.parent
        for candidate in (directory, *directory.parents):
            pyproject = candidate / "pyproject.toml"
            if pyproject.is_file():
                try:
                    data = tomllib.loads(pyproject.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
                    raise ConfigError(f"{pyproject}: cannot read configuration: {exc}") from exc
                table = data.get("tool", {}).get("torchsanity")
                if table is not None:
                    return cls.from_table(table, root=candidate, source=str(pyproject))
        return cls(root=directory)

    @classmethod
    def from_table(cls, table: dict, root: Path | None = None, source: str = "configuration") -> "Config":
        def codes(key: str) -> tuple[str, ...]:
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: `{key}` must be a list of rule codes")
            return tuple(v.strip().upper() for v in value)

        known = {"select", "ignore", "per-file-ignores", "exclude", "severity", "extend-select"}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) in [tool.torchsanity]: {', '.join(sorted(unknown))}")
        per_file = table.get("per-file-ignores", {})
        if not isinstance(per_file, dict):
            raise ConfigError(f"{source}: `per-file-ignores` must be a table of glob = [codes]")
        exclude = table.get("exclude", [])
        if not isinstance(exclude, list):
            raise ConfigError(f"{source}: `exclude` must be a list of globs")
        severity = table.get("severity", {})
        try:
            severity_items = tuple((k.upper(), Severity(v)) for k, v in severity.items())
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{source}: `severity` values must be error, warning or info") from exc
        return cls(
            select=(codes("select") or ("ALL",)) + codes("extend-select"),
            ignore=codes("ignore"),
            per_file_ignores=tuple((glob, tuple(c.upper() for c in cs)) for glob, cs in per_file.items()),
            exclude=tuple(str(e) for e in exclude),
            severity=severity_items,
            root=root,
        )

    def overridden(
        self,
        select: list[str] | tuple[str, ...] | None = None,
        ignore: list[str] | tuple[str, ...] | None = None,
        severity: dict[str, str] | None = None,
    ) -> "Config":
        """This configuration with editor settings or CLI flags on top (given values replace)."""
        config = self
        if select:
            config = replace(config, select=tuple(s.upper() for s in select))
        if ignore:
            config = replace(config, ignore=tuple(config.ignore) + tuple(s.upper() for s in ignore))
        if severity:
            merged = dict(config.severity)
            merged.update({k.upper(): Severity(v) for k, v in severity.items()})
            config = replace(config, severity=tuple(merged.items()))
        return config

    # ---- queries --------------------------------------------------------------------------------

    def _relative(self, path: str | Path) -> str:
        p = Path(path)
        if self.root is not None:
            try:
                return PurePosixPath(p.resolve().relative_to(self.root)).as_posix()
            except ValueError:
                pass
        return PurePosixPath(p).as_posix()

    def is_excluded(self, path: str | Path) -> bool:
        rel = self._relative(path)
        parts = rel.split("/")
        for pattern in self.exclude:
            pat = pattern.rstrip("/")
            if fnmatch.fnmatch(rel, pat) or fnmatch.fnmatch(rel, pat + "/*"):
                return True
            if "/" not in pat and any(fnmatch.fnmatch(part, pat) for part in parts):
                return True
        return False

    def is_enabled(self, code: str, path: str | Path | None = None) -> bool:
        if not _matches(code, self.select) or _matches(code, self.ignore):
            return False
        if path is not None and self.per_file_ignores:
            rel = self._relative(path)
            for glob, codes in self.per_file_ignores:
                if (fnmatch.fnmatch(rel, glob) or fnmatch.fnmatch(Path(rel).name, glob)) and _matches(code, codes):
                    return False
        return True

    def severity_for(self, code: str, default: Severity) -> Severity:
        for key, value in self.severity:
            if key == code:
                return value
        return default
