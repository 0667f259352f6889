"""Editor settings (section ``torchsanity``) and how they merge with the project's ``pyproject.toml``.

Settings come from ``workspace/configuration`` (one request item per workspace folder, so multi-root
workspaces can differ), falling back to ``initializationOptions.settings`` / ``didChangeConfiguration``
for clients without the pull model. Keys (camelCase as in VS Code; snake_case accepted too):

- ``select`` / ``ignore``: rule codes or prefixes; ``select`` replaces the project's, ``ignore`` adds to it;
- ``severity``: ``{"SAN504": "error" | "warning" | "info"}``, over the project's ``severity`` table;
- ``run``: ``"onType"`` (default; analyse after each change, debounced) or ``"onSave"``;
- ``debounceMs``: the quiet time after the last keystroke before analysing (default 250);
- ``enable``: ``false`` turns diagnostics off for the folder;
- ``analysisTimeoutMs``: the time budget of one analysis (default 30000; 0 = none); a file that takes
  longer gets one warning instead of findings, and the server moves on.

Invalid values are reported (one log line each) and replaced by their defaults: a typo in the
settings must never stop the analysis.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from ..analyzers import Config, ConfigError

SECTION = "torchsanity"
RUN_ON_TYPE = "onType"
RUN_ON_SAVE = "onSave"
DEFAULT_DEBOUNCE_MS = 250
DEFAULT_ANALYSIS_TIMEOUT_MS = 30_000
_SEVERITIES = {"error": "error", "warning": "warning", "info": "info", "information": "info", "hint": "info"}


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    severity: tuple[tuple[str, str], ...] = ()
    run: str = RUN_ON_TYPE
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    enable: bool = True
    analysis_timeout_ms: int = DEFAULT_ANALYSIS_TIMEOUT_MS
    problems: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def from_json(cls, data: Any) -> "Settings":
        """Settings from the client's JSON; never raises (problems are collected in ``problems``)."""
        if data is None:
            return cls()
        if hasattr(data, "_asdict"):
            data = to_plain(data)
        if not isinstance(data, Mapping):
            return cls(problems=(f"settings `{SECTION}` must be an object, got {type(data).__name__}",))
        problems: list[str] = []

        def get(*names: str) -> Any:
            for name in names:
                if name in data:
                    return data[name]
            return None

        def codes(name: str) -> tuple[str, ...]:
            value = get(name)
            if value is None:
                return ()
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                problems.append(f"`{SECTION}.{name}` must be a list of rule codes")
                return ()
            return tuple(v.strip().upper() for v in value if v.strip())

        severity: list[tuple[str, str]] = []
        raw_severity = get("severity")
        if raw_severity is not None:
            if not isinstance(raw_severity, Mapping):
                problems.append(f"`{SECTION}.severity` must map rule codes to error / warning / info")
            else:
                for code, level in raw_severity.items():
                    normalized = _SEVERITIES.get(str(level).lower())
                    if normalized is None:
                        problems.append(f"`{SECTION}.severity.{code}`: {level!r} is not error, warning or info")
                        continue
                    severity.append((str(code).upper(), normalized))

        run = get("run") or RUN_ON_TYPE
        if run not in (RUN_ON_TYPE, RUN_ON_SAVE):
            problems.append(f"`{SECTION}.run` must be {RUN_ON_TYPE!r} or {RUN_ON_SAVE!r}, got {run!r}")
            run = RUN_ON_TYPE

        debounce = get("debounceMs", "debounce_ms", "debounce")
        if debounce is None:
            debounce = DEFAULT_DEBOUNCE_MS
        elif isinstance(debounce, bool) or not isinstance(debounce, (int, float)) or debounce < 0:
            problems.append(f"`{SECTION}.debounceMs` must be a number of milliseconds >= 0")
            debounce = DEFAULT_DEBOUNCE_MS

        timeout = get("analysisTimeoutMs", "analysis_timeout_ms")
        if timeout is None:
            timeout = DEFAULT_ANALYSIS_TIMEOUT_MS
        elif isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0:
            problems.append(f"`{SECTION}.analysisTimeoutMs` must be a number of milliseconds >= 0")
            timeout = DEFAULT_ANALYSIS_TIMEOUT_MS

        enable = get("enable")
        if enable is None:
            enable = True
        elif not isinstance(enable, bool):
            problems.append(f"`{SECTION}.enable` must be true or false")
            enable = True

        return cls(
            select=codes("select"),
            ignore=codes("ignore"),
            severity=tuple(severity),
            run=run,
            debounce_ms=int(debounce),
            enable=enable,
            analysis_timeout_ms=int(timeout),
            problems=tuple(problems),
        )

    def apply(self, config: Config) -> Config:
        """The project's configuration with these settings on top."""
        return config.overridden(
            select=list(self.select) or None,
            ignore=list(self.ignore) or None,
            severity=dict(self.severity) or None,
        )


def to_plain(value: Any) -> Any:
    """pygls hands untyped params over as namedtuples: back to dicts and lists."""
    if hasattr(value, "_asdict"):
        return {k: to_plain(v) for k, v in value._asdict().items()}
    if isinstance(value, Mapping):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    return value


class ProjectConfigs:
    """``Config.discover`` per directory, cached until a ``pyproject.toml`` changes."""

    def __init__(self, on_error: Callable[[str], None]) -> None:
        self._cache: dict[Path, Config] = {}
        self._lock = threading.Lock()
        self._on_error = on_error

    def for_path(self, path: str | Path) -> Config:
        directory = Path(path).parent
        with self._lock:
            cached = self._cache.get(directory)
        if cached is not None:
            return cached
        try:
            config = Config.discover(directory)
        except ConfigError as error:
            self._on_error(str(error))
            config = Config(root=directory)
        except OSError as error:  # an unreachable directory (untitled buffers, virtual file systems)
            self._on_error(f"cannot read the configuration of {directory}: {error}")
            config = Config(root=None)
        with self._lock:
            self._cache[directory] = config
        return config

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()
