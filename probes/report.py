"""The probe report's shape, defined once: written by the child (``child.py``), completed by the parent
(``server/probe_runner.py``: determinism, timeouts, ranks) and read by the CLI, the renderers and the language
server. Standard library only: the parent reads it without torch."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, TypedDict

STATUSES = ("pass", "warn", "fail", "skip", "error")
ERROR_SOURCES = ("script", "entry", "harness")  # who raised: the user's script, the --entry function, the probe


class ReportError(ValueError):
    """A report (or a part of one) that does not have the contract's shape."""


@dataclass
class CheckEntry:
    """One check's verdict in the report; ``line`` / ``path`` point at the source it blames (``path`` only when
    it is not the probed script)."""

    id: str
    status: str
    message: str
    measured: Any = None
    expected: Any = None
    line: int | None = None
    path: str | None = None
    series: dict = field(default_factory=dict)
    details: dict | None = None
    seconds: float | None = None

    def to_json(self) -> dict:
        out = {"id": self.id, "status": self.status, "measured": self.measured, "expected": self.expected,
               "message": self.message, "line": self.line, "series": self.series}
        for key in ("path", "details", "seconds"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, data: Any) -> CheckEntry:
        """The entry, checked against the contract (:class:`ReportError` names what is wrong)."""
        fields = _fields(data, "check entry", required=("id", "status", "message"),
                         optional=("measured", "expected", "line", "path", "series", "details", "seconds"))
        if fields["status"] not in STATUSES:
            raise ReportError(f"check {fields['id']!r}: status {fields['status']!r} is not one of "
                              f"{', '.join(STATUSES)}")
        _typed(fields, "check entry", id=str, message=str, line=int, path=str, series=dict, details=dict,
               seconds=(int, float))
        fields.setdefault("series", {})
        fields["series"] = fields["series"] or {}
        return cls(**fields)


@dataclass
class ProbeError:
    """Why the probe as a whole did not complete: the script's (or entry's) exception, or the harness's reason."""

    type: str
    message: str
    source: str = "harness"
    traceback: str | None = None
    output: str | None = None  # the script's last lines of output, when it ended before a training step
    oom: bool | None = None

    def to_json(self) -> dict:
        out = {"type": self.type, "message": self.message, "source": self.source}
        for key in ("traceback", "output", "oom"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out

    @classmethod
    def from_json(cls, data: Any) -> ProbeError:
        fields = _fields(data, "error", required=("type", "message"),
                         optional=("source", "traceback", "output", "oom"))
        _typed(fields, "error", type=str, message=str, source=str, traceback=str, output=str, oom=bool)
        if fields.get("source", "harness") not in ERROR_SOURCES:
            raise ReportError(f"error: source {fields['source']!r} is not one of {', '.join(ERROR_SOURCES)}")
        return cls(**fields)


class Report(TypedDict, total=False):
    """The whole report (JSON object). Written by the child: everything down to ``notes``; added by the parent:
    the determinism entry, ``timed_out`` … ``world_size``."""

    script: str | None  # the probed script (absolute), or the --entry spec
    device: str | None
    checks: list[dict]  # CheckEntry.to_json(), in CHECK_IDS order
    error: dict  # ProbeError.to_json()
    oom: bool
    rank: int
    torch: str
    exit_code: int  # 0 pass / warn / skip, 1 a fail, 2 an error
    fingerprint: dict  # first loss, weights and batch checksums (compared by determinism)
    step: dict  # which training step was probed: index, followed_by, skipped_backwards; warmup (warmup.py)
    model: str
    parameters: int
    optimizer: dict | None
    loss: dict
    batch: dict
    copies: str
    copy_error: str
    sites: dict  # model / loss / loop / optimizer / data -> {path, line}
    notes: list[str]  # changes the harness made or choices it took
    timed_out: bool
    cancelled: bool
    not_run: dict  # {checks: [...], reason}
    duration: float
    ranks: list[dict]
    world_size: int
    summary: dict  # probes/summary.py: model (layers, parameters), filters, thumbnails


_REPORT_TYPES: dict[str, Any] = {"script": str, "device": str, "checks": list, "error": dict, "oom": bool,
                                 "rank": int, "torch": str, "exit_code": int, "fingerprint": dict, "step": dict,
                                 "model": str, "parameters": int, "optimizer": dict, "loss": dict, "batch": dict,
                                 "copies": str, "copy_error": str, "sites": dict, "notes": list,
                                 "timed_out": bool, "cancelled": bool, "not_run": dict, "duration": (int, float),
                                 "ranks": list, "world_size": int, "summary": dict}


def parse_report(data: Any) -> Report:
    """The report checked against the contract, with every check entry and the error normalised through
    :class:`CheckEntry` / :class:`ProbeError`; raises :class:`ReportError` naming what does not fit."""
    if not isinstance(data, dict):
        raise ReportError(f"a report is a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(Report.__annotations__))
    if unknown:
        raise ReportError(f"unknown report field(s): {', '.join(unknown)}")
    _typed(data, "report", **_REPORT_TYPES)
    report: Report = dict(data)  # type: ignore[assignment]
    report["checks"] = [CheckEntry.from_json(c).to_json() for c in data.get("checks") or []]
    if data.get("error") is not None:
        report["error"] = ProbeError.from_json(data["error"]).to_json()
    return report


def read_report(path: str) -> Report | None:
    """The report in ``path``, or None when it is missing or not (yet) complete JSON."""
    try:
        with open(path, encoding="utf-8") as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    return parse_report(data)


def describe(value: Any, limit: int = 300) -> str:
    """A measured / expected value as words and numbers for people (never a Python or JSON literal):
    ``{"loss": 2.3, "shape": [64, 20]}`` → ``loss 2.3, shape 64×20``; nested objects become ``key: (…)``."""
    text = _describe(value, None, 0)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _describe(value: Any, key: str | None, depth: int) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return {"nan": "NaN", "inf": "infinity", "-inf": "minus infinity"}[str(value)]
        return f"{value:.4g}"
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)):
        if not value:
            return "none"
        if key == "shape" and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return "×".join(map(str, value))
        shown = [_describe(v, None, depth + 2) for v in value[:6]]  # an object in a list keeps its brackets
        more = f", … ({len(value)} in all)" if len(value) > 6 else ""
        return (", ".join(shown) + more) if depth == 0 else "(" + ", ".join(shown) + more + ")"
    if isinstance(value, dict):
        parts = []
        for k, v in value.items():
            if v is None or v == [] or v == {}:
                continue
            name = str(k).replace("_", " ")
            inner = _describe(v, str(k), depth + 1)
            parts.append(f"{name}: {inner}" if isinstance(v, dict) and depth == 0 else f"{name} {inner}")
        if not parts:
            return "—"
        joined = ("; " if depth == 0 and any(isinstance(v, dict) for v in value.values()) else ", ").join(parts)
        return joined if depth <= 1 else f"({joined})"
    return str(value)


def _fields(data: Any, what: str, *, required: tuple[str, ...], optional: tuple[str, ...]) -> dict:
    if not isinstance(data, dict):
        raise ReportError(f"{what}: a JSON object, not {type(data).__name__}")
    missing = [k for k in required if k not in data]
    unknown = sorted(set(data) - set(required) - set(optional))
    if missing or unknown:
        raise ReportError(f"{what} {data.get('id', '')!s}: " + "; ".join(
            part for part in (f"missing {', '.join(missing)}" if missing else "",
                              f"unknown {', '.join(unknown)}" if unknown else "") if part))
    return dict(data)


def _typed(data: dict, what: str, **types: Any) -> None:
    """Each named field, when present and not null, has its type (bool is not an int here)."""
    for key, kind in types.items():
        value = data.get(key)
        if value is None:
            continue
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if isinstance(value, bool) and bool not in kinds:
            raise ReportError(f"{what}: {key} must be {'/'.join(k.__name__ for k in kinds)}, not a boolean")
        if not isinstance(value, kinds):
            raise ReportError(f"{what}: {key} must be {'/'.join(k.__name__ for k in kinds)}, not "
                              f"{type(value).__name__}")
