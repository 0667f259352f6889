"""What ``torchsanity watch`` shows while the run goes: on a terminal a compact live dashboard (rich) with sparklines
of the loss, the global gradient norm, the learning rate and the throughput, and the verdicts as they fire; plain
progress lines when stderr is not a terminal. Both read the metrics records (``probes/watch.py``'s JSON lines)."""

from __future__ import annotations

import math
import os
import sys
import time
from collections import deque

SPARK = "▁▂▃▄▅▆▇█"
WINDOW = 120  # the most recent steps a sparkline shows
PLAIN_INTERVAL = 2.0  # seconds between two plain progress lines


def _number(value) -> float | None:
    """A recorded number ("nan", "inf" included) as a float, else None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def throughput(record: dict) -> tuple[float | None, str]:
    """Samples per second of a step record, from ``samples_per_second`` or ``samples`` (the batch size) over
    ``seconds``; without a batch size, steps per second. Returns the value and its unit."""
    sps = _number(record.get("samples_per_second"))
    if sps is not None:
        return sps, "samples/s"
    seconds = _number(record.get("seconds"))
    if seconds is None or not seconds > 0:
        return None, "samples/s"
    batch = _number(record.get("samples", record.get("batch_size")))
    if batch is not None:
        return batch / seconds, "samples/s"
    return 1.0 / seconds, "steps/s"


def sparkline(values, width: int = 40) -> str:
    """The last ``width`` values as block characters, scaled between their minimum and maximum; a non-finite
    value is ``!``, a missing one a space. A series spanning decades (all positive) is drawn on a log scale."""
    values = list(values)[-width:]
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return "".join("!" if v is not None else " " for v in values)
    log = min(finite) > 0 and max(finite) / min(finite) > 100
    scale = (lambda v: math.log10(v)) if log else (lambda v: v)
    lo, hi = scale(min(finite)), scale(max(finite))
    out = []
    for v in values:
        if v is None:
            out.append(" ")
        elif not math.isfinite(v):
            out.append("!")
        elif hi == lo:
            out.append(SPARK[len(SPARK) // 2])
        else:
            out.append(SPARK[min(len(SPARK) - 1, int((scale(v) - lo) / (hi - lo) * len(SPARK)))])
    return "".join(out)


def fmt(value: float | None) -> str:
    """A value in four significant digits; ``—`` when there is none."""
    if value is None:
        return "—"
    return f"{value:.4g}"


class WatchState:
    """The recent values of each curve, the step count, and the verdicts, built from the metrics records."""

    CURVES = ("loss", "grad norm", "lr", "throughput")

    def __init__(self, script: str, steps: int | None = None, epochs: int | None = None, window: int = WINDOW):
        self.script = script
        self.budget = steps
        self.epochs = epochs
        self.started = time.monotonic()
        self.step = 0
        self.epoch: int | None = None
        self.unit = "samples/s"
        self.curves: dict[str, deque] = {name: deque(maxlen=window) for name in self.CURVES}
        self.latest: dict[str, float | None] = {name: None for name in self.CURVES}
        self.verdicts: list[dict] = []

    def add(self, records: list[dict]) -> None:
        for record in records:
            if record.get("kind") != "step":
                continue
            self.step = int(record.get("step") or self.step)
            if isinstance(record.get("epoch"), int):
                self.epoch = record["epoch"]
            lr = record.get("lr") or [None]
            rate, self.unit = throughput(record)
            values = {"loss": _number(record.get("loss")), "grad norm": _number(record.get("grad_norm")),
                      "lr": _number(lr[0]), "throughput": rate}
            for name, value in values.items():
                if value is not None:  # the gradient norm is taken on a stride: only the steps that have one
                    self.curves[name].append(value)
                    self.latest[name] = value

    def verdict(self, verdict: dict) -> None:
        self.verdicts.append(verdict)

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def headline(self) -> str:
        of = f"/{self.budget}" if self.budget else ""
        epoch = f" · epoch {self.epoch}" + (f"/{self.epochs}" if self.epochs else "") if self.epoch is not None else ""
        return f"step {self.step}{of}{epoch} · {self.elapsed():.0f} s"

    def plain_line(self) -> str:
        """One progress line: the step, the latest values, the verdicts so far."""
        parts = [f"loss {fmt(self.latest['loss'])}", f"grad norm {fmt(self.latest['grad norm'])}",
                 f"lr {fmt(self.latest['lr'])}", f"{fmt(self.latest['throughput'])} {self.unit}"]
        tail = f"; {len(self.verdicts)} verdict(s)" if self.verdicts else ""
        return f"torchsanity watch: {self.headline()}: {', '.join(parts)}{tail}"


def renderable(state: WatchState, width: int = 100):
    """The dashboard: a panel with one row per curve (latest value, sparkline, range) and the verdicts."""
    from rich.console import Group
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    spark = max(10, min(WINDOW, width - 48))
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_column(style="cyan", no_wrap=True)
    table.add_column(style="dim", no_wrap=True)
    for name in WatchState.CURVES:
        values = state.curves[name]
        finite = [v for v in values if v is not None and math.isfinite(v)]
        span = f"{fmt(min(finite))} … {fmt(max(finite))}" if finite else ""
        label = state.unit if name == "throughput" else name
        table.add_row(label, fmt(state.latest[name]), sparkline(values, spark), span)
    parts: list = [table]
    if state.verdicts:
        lines = Text()
        for v in state.verdicts:
            lines.append(f"\nstep {v.get('step')}  ", style="dim")
            lines.append(f"{v.get('id')}", style="bold red")
            lines.append(f": {v.get('message')}")
        parts.append(lines)
    else:
        parts.append(Text("\nno verdicts", style="green"))
    title = f"torchsanity watch — {os.path.basename(state.script)} · {state.headline()}"
    return Panel(Group(*parts), title=title, title_align="left", border_style="blue")


class Display:
    """The live view of a run on stderr: the rich dashboard on a terminal, plain lines otherwise. The script's
    own output is printed above the dashboard (or as is)."""

    def __init__(self, state: WatchState, live: bool | None = None):
        self.state = state
        self.live_view = None
        self.last_plain = 0.0
        if live is None:
            live = sys.stderr.isatty() and os.environ.get("TERM") != "dumb"
        if live:
            from rich.console import Console
            from rich.live import Live

            console = Console(stderr=True)
            self.live_view = Live(renderable(state, console.width), console=console, refresh_per_second=4,
                                  transient=False, redirect_stdout=False, redirect_stderr=False,
                                  get_renderable=lambda: renderable(state, console.width))

    def __enter__(self) -> "Display":
        if self.live_view is not None:
            self.live_view.start()
        return self

    def __exit__(self, *exc) -> None:
        if self.live_view is not None:
            self.live_view.refresh()
            self.live_view.stop()
        elif self.state.step:
            _stderr(self.state.plain_line())

    def records(self, records: list[dict]) -> None:
        self.state.add(records)
        now = time.monotonic()
        if self.live_view is None and self.state.step and now - self.last_plain >= PLAIN_INTERVAL:
            self.last_plain = now
            _stderr(self.state.plain_line())

    def verdict(self, verdict: dict) -> None:
        self.state.verdict(verdict)
        if self.live_view is None:
            _stderr(f"torchsanity watch: step {verdict['step']}: {verdict['id']}: {verdict['message']}")

    def output(self, _stream: str, line: str) -> None:
        if self.live_view is not None:
            self.live_view.console.print(line, markup=False, highlight=False, soft_wrap=True)
        else:
            _stderr(line)


def _stderr(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone (SIGHUP)
        pass

