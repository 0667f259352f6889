"""Editor settings (section ``torchsanity``) and how they merge with the project's ``pyproject.toml``.

Settings come from ``workspace/configuration`` (one request item per workspace folder, so multi-root
workspaces can differ), falling back to ``initializationOptions.settings`` / ``didChangeConfiguration``
for clients without the pull model. :data:`SERVER_SETTINGS` is the one list of what the server reads; VS Code
declares the same keys in ``package.json`` (a test keeps the two equal) and forwards them unvalidated: this
module is the only place that validates them. Keys are camelCase as in VS Code; a client may send dotted keys
nested (``{"probe": {"timeout": 60}}``) or flat (``{"probe.timeout": 60}``).

Invalid values are reported (one log line each) and replaced by their defaults: a typo in the
settings must never stop the analysis.
"""

from __future__ import annotations

import re
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
#: ``severity`` values: the project's levels (``[tool.torchsanity] severity``) plus ``off`` (= ignore).
SEVERITY_LEVELS = ("error", "warning", "info", "off")
_CODE = re.compile(r"^(ALL|SAN\d{0,3})$")
_FULL_CODE = re.compile(r"^SAN\d{3}$")


@dataclass(frozen=True)
class Setting:
    """One key of the ``torchsanity`` section: its default and, for strings, the values allowed."""

    key: str
    default: Any
    choices: tuple[str, ...] = ()


#: What the language server reads from the ``torchsanity`` section.
SERVER_SETTINGS: tuple[Setting, ...] = (
    Setting("enable", True),  # false silences the folder
    Setting("select", []),  # codes or prefixes; replaces the project's select
    Setting("ignore", []),  # codes or prefixes; added to the project's ignore
    Setting("severity", {}, SEVERITY_LEVELS),  # per rule code
    Setting("run", RUN_ON_TYPE, (RUN_ON_TYPE, RUN_ON_SAVE)),
    Setting("debounceMs", DEFAULT_DEBOUNCE_MS),  # quiet time after the last edit before analysing
    Setting("analysisTimeoutMs", DEFAULT_ANALYSIS_TIMEOUT_MS),  # budget of one analysis; 0 = none
    Setting("codeLens", True),  # the "Run Sanity Probe" lens over the entry point
    # `torchsanity/watch`'s defaults when the request does not give them (null: the runner's default / no limit)
    Setting("watch.every", None),  # per-layer statistics every K steps
    Setting("watch.steps", None),  # stop after N optimizer steps
    Setting("watch.epochs", None),  # stop after N epochs
    Setting("watch.timeout", None),  # stop after S seconds
)

#: Keys only the editor uses (how it starts the server, the params it sends with ``torchsanity/runProbe``,
#: which the server validates in :mod:`.lsp_probe`): known here so that they are not reported as unknown.
CLIENT_SETTINGS: tuple[str, ...] = (
    "interpreter",
    "useBundledServer",
    "trace.server",
    "probe.args",
    "probe.checks",
    "probe.timeout",
    "probe.device",
    "probe.step",
    "probe.batchDim",
    "probe.allowMixing",
    "probe.checkBudget",
    "probe.openReport",
)

_KNOWN = {s.key for s in SERVER_SETTINGS} | set(CLIENT_SETTINGS)
_GROUPS = {key.split(".", 1)[0] for key in _KNOWN if "." in key}


def _flatten(data: Mapping[str, Any]) -> dict[str, Any]:
    """``{"probe": {"timeout": 1}}`` → ``{"probe.timeout": 1}`` for the dotted groups; other keys as they are."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        key = str(key)
        if key in _GROUPS and isinstance(value, Mapping):
            for sub, sub_value in value.items():
                flat[f"{key}.{sub}"] = sub_value
        else:
            flat[key] = value
    return flat


def _milliseconds(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 2**31


@dataclass(frozen=True)
class Settings:
    select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    severity: tuple[tuple[str, str], ...] = ()
    run: str = RUN_ON_TYPE
    debounce_ms: int = DEFAULT_DEBOUNCE_MS
    enable: bool = True
    analysis_timeout_ms: int = DEFAULT_ANALYSIS_TIMEOUT_MS
    code_lens: bool = True
    watch_every: int | None = None
    watch_steps: int | None = None
    watch_epochs: int | None = None
    watch_timeout: float | None = None
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
        data = _flatten(data)
        problems = [f"unknown setting `{SECTION}.{key}`" for key in data if key not in _KNOWN]

        def codes(name: str) -> tuple[str, ...]:
            value = data.get(name)
            if value is None:
                return ()
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                problems.append(f"`{SECTION}.{name}` must be a list of rule codes")
                return ()
            out: list[str] = []
            for raw in value:
                code = raw.strip().upper()
                if not _CODE.match(code):
                    problems.append(f"`{SECTION}.{name}`: {raw!r} is not a rule code or prefix (SAN1, SAN504, ALL)")
                elif code not in out:
                    out.append(code)
            return tuple(out)

        def flag(name: str) -> bool:
            value = data.get(name)
            if value is None:
                return True
            if not isinstance(value, bool):
                problems.append(f"`{SECTION}.{name}` must be true or false")
                return True
            return value

        def milliseconds(name: str, default: int) -> int:
            value = data.get(name)
            if value is None:
                return default
            if not _milliseconds(value):
                problems.append(f"`{SECTION}.{name}` must be a number of milliseconds >= 0")
                return default
            return int(value)

        def positive(name: str, kinds: tuple[type, ...], what: str) -> Any:
            value = data.get(name)
            if value is None:
                return None
            if not isinstance(value, kinds) or isinstance(value, bool) or not value > 0:
                problems.append(f"`{SECTION}.{name}` must be {what} (or null)")
                return None
            return value

        select, ignore = codes("select"), codes("ignore")
        watch_timeout = positive("watch.timeout", (int, float), "a number of seconds > 0")
        severity: list[tuple[str, str]] = []
        raw_severity = data.get("severity")
        if raw_severity is not None and not isinstance(raw_severity, Mapping):
            problems.append(f"`{SECTION}.severity` must map rule codes to {', '.join(SEVERITY_LEVELS)}")
        elif raw_severity is not None:
            for raw_code, raw_level in raw_severity.items():
                code, level = str(raw_code).strip().upper(), str(raw_level).strip().lower()
                if level not in SEVERITY_LEVELS:
                    problems.append(
                        f"`{SECTION}.severity.{raw_code}`: {raw_level!r} is not one of {', '.join(SEVERITY_LEVELS)}"
                    )
                elif not _FULL_CODE.match(code):
                    problems.append(f"`{SECTION}.severity`: {raw_code!r} is not a rule code (SAN504)")
                elif level == "off":
                    ignore += () if code in ignore else (code,)
                else:
                    severity.append((code, level))

        run = data.get("run")
        if run is None:
            run = RUN_ON_TYPE
        elif run not in (RUN_ON_TYPE, RUN_ON_SAVE):
            problems.append(f"`{SECTION}.run` must be {RUN_ON_TYPE!r} or {RUN_ON_SAVE!r}, got {run!r}")
            run = RUN_ON_TYPE

        return cls(
            select=select,
            ignore=ignore,
            severity=tuple(severity),
            run=run,
            debounce_ms=milliseconds("debounceMs", DEFAULT_DEBOUNCE_MS),
            enable=flag("enable"),
            analysis_timeout_ms=milliseconds("analysisTimeoutMs", DEFAULT_ANALYSIS_TIMEOUT_MS),
            code_lens=flag("codeLens"),
            watch_every=positive("watch.every", (int,), "a whole number of steps >= 1"),
            watch_steps=positive("watch.steps", (int,), "a whole number of steps >= 1"),
            watch_epochs=positive("watch.epochs", (int,), "a whole number of epochs >= 1"),
            watch_timeout=None if watch_timeout is None else float(watch_timeout),
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
