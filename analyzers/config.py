"""`[tool.torchsanity]` configuration: select, ignore, per-file-ignores, exclude, severity.

Codes may be given by prefix as in ruff (``SAN1`` = every SAN1xx rule; ``ALL`` = every rule).
Project configuration is read from the nearest ``pyproject.toml`` and can be overridden by editor
settings or CLI flags through :meth:`Config.overridden`.
"""

from __future__ import annotations

import difflib
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


def known_codes() -> tuple[str, ...]:
    """Every rule code, SAN100 (unused-noqa) included."""
    from .registry import all_rules

    return tuple(rule.code for rule in all_rules())


def unknown_selector_message(selector: str, exact: bool = False) -> str | None:
    """None when ``selector`` (``ALL``, a code or a code prefix such as ``SAN1``; only a code when
    ``exact``) selects a rule, else a message naming the closest valid code. The table of codes answers
    first (no rule imported); the registry only when the table does not know the selector."""
    from .codes import CODES

    def selects(codes: tuple[str, ...]) -> bool:
        return selector in codes or not exact and (
            selector == "ALL" or selector.startswith("SAN") and any(code.startswith(selector) for code in codes))

    if selects(CODES):
        return None
    codes = known_codes()
    if selects(codes):
        return None
    close = difflib.get_close_matches(selector, codes, n=1, cutoff=0.0)
    hint = f"; did you mean {close[0]}?" if close else ""
    return f"unknown rule selector {selector!r}{hint}"


def check_selectors(selectors, where: str, exact: bool = False) -> None:
    """Raise :class:`ConfigError` for the first selector that names no rule."""
    for selector in selectors:
        message = unknown_selector_message(selector, exact)
        if message is not None:
            raise ConfigError(f"{where}: {message}")


@dataclass(frozen=True)
class Config:
    select: tuple[str, ...] = ("ALL",)
    ignore: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exclude: tuple[str, ...] = ()
    severity: tuple[tuple[str, Severity], ...] = ()
    root: Path | None = field(default=None, compare=False)
    # What `check --fix` may do (CLI flags, not read from pyproject.toml): apply unsafe fixes too;
    # write through a symlinked file to its target inside the project.
    unsafe_fixes: bool = False
    follow_symlinks: bool = False

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
    def from_file(cls, path: str | Path) -> "Config":
        """The configuration in ``path``: a ``pyproject.toml`` (its ``[tool.torchsanity]`` table) or a
        TOML file holding the options at top level (``torchsanity.toml``); its folder is the root."""
        path = Path(path).resolve()
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read configuration: {exc}") from exc
        if path.name == "pyproject.toml":
            data = data.get("tool", {}).get("torchsanity", {})
        return cls.from_table(data, root=path.parent, source=str(path))

    @classmethod
    def from_table(cls, table: dict, root: Path | None = None, source: str = "configuration") -> "Config":
        def codes(key: str) -> tuple[str, ...]:
            value = table.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"{source}: `{key}` must be a list of rule codes")
            return tuple(v.strip().upper() for v in value)

        known = {"select", "ignore", "per-file-ignores", "exclude", "extend-exclude", "severity", "extend-select"}
        unknown = set(table) - known
        if unknown:
            raise ConfigError(f"{source}: unknown key(s) in [tool.torchsanity]: {', '.join(sorted(unknown))}")
        per_file = table.get("per-file-ignores", {})
        if not isinstance(per_file, dict):
            raise ConfigError(f"{source}: `per-file-ignores` must be a table of glob = [codes]")
        severity = table.get("severity", {})
        exclude = table.get("exclude", [])
        extend_exclude = table.get("extend-exclude", [])
        if not isinstance(exclude, list) or not isinstance(extend_exclude, list):
            raise ConfigError(f"{source}: `exclude` and `extend-exclude` must be lists of globs")
        for key in ("select", "ignore", "extend-select"):
            check_selectors(codes(key), f"{source}: `{key}`")
        for glob, cs in per_file.items():
            if not isinstance(cs, list) or not all(isinstance(c, str) for c in cs):
                raise ConfigError(f"{source}: `per-file-ignores` values must be lists of rule codes")
            check_selectors([c.strip().upper() for c in cs], f"{source}: `per-file-ignores` {glob!r}")
        if not isinstance(severity, dict):
            raise ConfigError(f"{source}: `severity` must be a table of code = level")
        check_selectors([k.upper() for k in severity], f"{source}: `severity`", exact=True)
        try:
            severity_items = tuple((k.upper(), Severity(v)) for k, v in severity.items())
        except (ValueError, AttributeError) as exc:
            raise ConfigError(f"{source}: `severity` values must be error, warning or info") from exc
        return cls(
            select=(codes("select") or ("ALL",)) + codes("extend-select"),
            ignore=codes("ignore"),
            per_file_ignores=tuple((glob, tuple(c.upper() for c in cs)) for glob, cs in per_file.items()),
            exclude=tuple(str(e) for e in exclude + extend_exclude),
            severity=severity_items,
            root=root,
        )

    def overridden(
        self,
        select: list[str] | tuple[str, ...] | None = None,
        ignore: list[str] | tuple[str, ...] | None = None,
        severity: dict[str, str] | None = None,
        extend_select: list[str] | tuple[str, ...] | None = None,
        extend_exclude: list[str] | tuple[str, ...] | None = None,
    ) -> "Config":
        """This configuration with editor settings or CLI flags on top (given values replace)."""
        config = self
        if select:
            config = replace(config, select=tuple(s.upper() for s in select))
        if extend_select:
            config = replace(config, select=tuple(config.select) + tuple(s.upper() for s in extend_select))
        if extend_exclude:
            config = replace(config, exclude=tuple(config.exclude) + tuple(extend_exclude))
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
