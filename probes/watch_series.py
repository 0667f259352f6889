"""A watched run as series: ``Run`` is built record by record from the metrics file (the format is described in
``probes/watch.py``), and the small helpers every verdict uses. Standard library only: the CLI and the language
server read runs without torch."""

from __future__ import annotations

import bisect
import json
import math
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from statistics import median


def to_float(value) -> float | None:
    """A recorded number ("nan", "inf" and "-inf" included) as a float; None stays None."""
    if value is None:
        return None
    return float(value)  # float() reads "nan", "inf", "-inf"


def json_number(v):
    """A float for JSON: non-finite values as "nan", "inf" or "-inf"."""
    if v is None or math.isfinite(v):
        return v
    return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")


@dataclass
class Run:
    """The recorded series of one run, built record by record (the metrics file's JSON lines)."""

    steps: list[int] = field(default_factory=list)
    loss: list[float | None] = field(default_factory=list)
    grad_norm: list[float | None] = field(default_factory=list)
    lr: list[list[float | None]] = field(default_factory=list)
    seconds: list[float | None] = field(default_factory=list)
    data_seconds: list[float | None] = field(default_factory=list)
    compute_seconds: list[float | None] = field(default_factory=list)
    samples_per_second: list[float | None] = field(default_factory=list)
    epoch: list[int | None] = field(default_factory=list)
    layers: list[str] = field(default_factory=list)
    ndim: list[int] = field(default_factory=list)
    numel: list[int] = field(default_factory=list)
    samples: list[dict] = field(default_factory=list)
    activations: list[dict] = field(default_factory=list)
    evals: list[dict] = field(default_factory=list)
    filters: list[dict] = field(default_factory=list)  # the first and the latest
    checksums: dict[int, dict[int, dict]] = field(default_factory=dict)  # step -> rank -> record
    nonfinite: dict | None = None
    schedulers: list[dict] = field(default_factory=list)
    schedulers_stepped: list[dict] = field(default_factory=list)  # the ones whose step() the script called
    start: dict = field(default_factory=dict)
    end: dict | None = None
    optimizer: str | None = None

    def add(self, record: dict) -> None:
        kind = record.get("kind")
        if kind == "step":
            step = int(record["step"])
            if self.steps and step <= self.steps[-1]:
                return  # written twice (a flush interrupted by a stop)
            self.steps.append(step)
            self.loss.append(to_float(record.get("loss")))
            self.grad_norm.append(to_float(record.get("grad_norm")))
            self.lr.append([to_float(x) for x in record.get("lr") or []])
            self.seconds.append(record.get("seconds"))
            self.data_seconds.append(record.get("data_seconds"))
            self.compute_seconds.append(record.get("compute_seconds"))
            self.samples_per_second.append(record.get("samples_per_second"))
            self.epoch.append(record.get("epoch"))
        elif kind == "sample":
            if self.samples and record["step"] <= self.samples[-1]["step"]:
                return
            self.samples.append({"step": record["step"],
                                 **{k: [to_float(x) for x in record.get(k) or []]
                                    for k in ("grad_norm", "weight_norm", "update_ratio")},
                                 "cuda_memory": record.get("cuda_memory")})
        elif kind == "activations":
            if not self.activations or record["step"] > self.activations[-1]["step"]:
                self.activations.append({"step": record["step"], "modules": record.get("modules") or []})
        elif kind == "eval":
            self.evals.append({"step": record["step"], "loss": to_float(record.get("loss")), "fn": record.get("fn")})
        elif kind == "filters":
            self.filters = self.filters[:1] + [record]
        elif kind == "checksum":
            self.checksums.setdefault(int(record["step"]), {})[int(record["rank"])] = record
        elif kind == "nonfinite":
            self.nonfinite = self.nonfinite or record
        elif kind == "layers":
            self.layers, self.ndim = list(record["names"]), list(record["ndim"])
            self.numel = list(record.get("numel") or [])
            self.optimizer = record.get("optimizer")
        elif kind == "scheduler":
            self.schedulers.append({"type": record.get("type"), "watched": bool(record.get("watched"))})
        elif kind == "scheduler_stepped":
            self.schedulers_stepped.append({"type": record.get("type"), "watched": bool(record.get("watched"))})
        elif kind == "start":
            self.start = record
        elif kind == "end":
            self.end = record

    def extend(self, lines: Iterable[str]) -> list[dict]:
        """Add the records of complete JSON lines and return them; a line cut short or garbled, or a record
        without the fields of its kind, is skipped."""
        added = []
        for line in lines:
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                try:
                    self.add(record)
                except (KeyError, TypeError, ValueError):
                    continue
                added.append(record)
        return added

    def loss_at(self, step: int) -> float | None:
        """The loss recorded at ``step`` (or the nearest step before it)."""
        i = bisect.bisect_right(self.steps, step) - 1
        return self.loss[i] if i >= 0 else None

    def index(self, step: int) -> int:
        """The index of ``step`` in the step series (or of the nearest step before it)."""
        return max(0, bisect.bisect_right(self.steps, step) - 1)


def finite(x: float | None) -> bool:
    return x is not None and math.isfinite(x)


def segment(run: Run, start: int, stop: int, values: list | None = None) -> dict:
    """Evidence: the loss (or ``values``) from index ``start`` to ``stop`` (inclusive), non-finite as strings."""
    start, stop = max(0, start), min(len(run.steps) - 1, stop)
    series = run.loss if values is None else values
    return {"steps": run.steps[start:stop + 1], "values": [json_number(v) for v in series[start:stop + 1]]}


def verdict(vid: str, step: int, message: str, advice: str, evidence: dict, criterion: str, **extra) -> dict:
    """One verdict: its id, the step it fired at, what was seen, what to do, the curve segment, the rule."""
    return {"id": vid, "step": step, "message": message, "advice": advice, "evidence": evidence,
            "criterion": criterion, **extra}


def fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.4g}"


def converging(run: Run, first_step: int, last_step: int) -> bool:
    """The loss fell by more than 10% between two steps (AUTOTRAINER gates gradient verdicts on this)."""
    a, b = run.loss_at(first_step), run.loss_at(last_step)
    if not finite(a) or not finite(b) or a <= 0:
        return False
    return b < 0.9 * a


class Rolling:
    """The running median of the last ``window`` values pushed (the first ones over what there is so far)."""

    def __init__(self, window: int):
        self.values: deque[float] = deque(maxlen=window)

    def push(self, x: float) -> float:
        self.values.append(x)
        return median(self.values)


def loss_indices(run: Run) -> Iterator[int | None]:
    """The indices of the losses as they arrive, None while waiting for more (the caller yields None to wait); it
    ends at the first missing, NaN or negative loss (infinity is kept: it is as diverged as it gets). The loss-curve
    verdicts read positive losses only."""
    i = 0
    while True:
        if i >= len(run.loss):
            yield None
            continue
        x = run.loss[i]
        if x is None or math.isnan(x) or x < 0:
            return
        yield i
        i += 1


def arrivals(items: list) -> Iterator[int | None]:
    """The indices of a growing list's items as they arrive, None while waiting for more."""
    i = 0
    while True:
        if i >= len(items):
            yield None
            continue
        yield i
        i += 1
