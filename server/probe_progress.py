"""Live progress of `torchsanity probe` on a terminal (stderr): one bar per check, its verdict when it ends, and an
estimate of the time left — from the pace of the training steps so far, each check's usual number of steps and its
time budget (``probes/budget.py``) — with a warning naming ``--timeout`` when the estimate runs past it."""

from __future__ import annotations

import threading
import time
from typing import Callable

from ..probes.budget import BUDGET_S, USUAL_STEPS, budget_seconds
from ..probes.checks import PARENT_CHECKS
from . import probe_report

FORWARD_TO_STEP = 3.0  # a training step costs about three forward passes (the backward about two)


def duration(seconds: float) -> str:
    """"45 s", "3 min 20 s"."""
    seconds = max(0, int(round(seconds)))
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


class Eta:
    """The time left of a probe, from its events: the seconds per training step measured so far, times the steps
    each remaining check usually takes (capped by its budget: ``check_budget`` seconds when given, as
    ``--check-budget``). None until a step has been timed."""

    def __init__(self, checks: list[str], steps: int, clock: Callable[[], float] = time.monotonic,
                 check_budget: float | None = None):
        self.clock = clock
        self.check_budget = check_budget
        self.steps = steps
        self.pending = [c for c in checks if c not in PARENT_CHECKS]
        self.current: str | None = None
        self.started = clock()
        self.check_started = self.started
        self.step_done = 0
        self.step_total = 0
        self._last: tuple[str, float] | None = None
        self.per_step: float | None = None

    def on_event(self, ev: dict) -> None:
        kind, now = ev.get("event"), self.clock()
        if kind == "check-start":
            self.current = ev.get("check")
            self.check_started = now
            self.step_done = self.step_total = 0
            self._last = None
            if self.current in self.pending:
                self.pending.remove(self.current)
        elif kind == "step" and ev.get("check") == self.current:
            if self._last is not None and self._last[0] == self.current and ev.get("step", 0) > self.step_done:
                took = (now - self._last[1]) / (ev["step"] - self.step_done)
                self.per_step = took if self.per_step is None else 0.7 * self.per_step + 0.3 * took
            elif self.per_step is None:  # a first guess: the first forward pass, and a backward of twice its cost
                self.per_step = FORWARD_TO_STEP * (now - self.check_started)
            self._last = (self.current, now)
            self.step_done, self.step_total = ev.get("step", 0), ev.get("total", 0)
        elif kind == "check-end":
            self.current = None

    def _check_seconds(self, check: str) -> float:
        steps = USUAL_STEPS.get(check, 0.0) * self.steps
        seconds = steps * (self.per_step or 0.0)
        return min(seconds, self._budget(check)) if check in BUDGET_S else seconds

    def _budget(self, check: str) -> float:
        return self.check_budget if self.check_budget is not None else budget_seconds(check)

    def left(self) -> float | None:
        """Seconds left, or None before the pace of a training step is known."""
        if self.per_step is None:
            return None
        total = sum(self._check_seconds(c) for c in self.pending)
        if self.current is not None:
            usual = USUAL_STEPS.get(self.current, 0.0) * self.steps
            planned = min(self.step_total or usual, max(usual, self.step_done))
            seconds = max(0.0, planned - self.step_done) * self.per_step
            if self.current in BUDGET_S:
                seconds = min(seconds, max(0.0, self._budget(self.current) - (self.clock() - self.check_started)))
            total += seconds
        return total

    def elapsed(self) -> float:
        return self.clock() - self.started


class Progress:
    """Live progress on stderr with rich: a line with the time left, one bar per check, its verdict when it ends."""

    def __init__(self, enabled: bool, checks: list[str], steps: int, timeout: float,
                 check_budget: float | None = None):
        self.enabled = enabled
        self.timeout = timeout
        self.eta = Eta(checks, steps, check_budget=check_budget)
        self.progress = None
        self.tasks: dict[str, int] = {}
        self.warned = False
        self.lock = threading.Lock()
        if enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, SpinnerColumn, TextColumn
            from rich.progress import Progress as RichProgress

            self.console = Console(stderr=True)
            self.progress = RichProgress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                         MofNCompleteColumn(), console=self.console, transient=False)

    def __enter__(self):
        if self.progress is not None:
            self.progress.start()
            self.overall = self.progress.add_task("time left: estimated after the first training steps", total=None)
            self.waiting = self.progress.add_task("running the script to its first backward()", total=None)
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.stop()

    def on_event(self, ev: dict) -> None:
        with self.lock:
            self.eta.on_event(ev)
            if self.progress is None:
                return
            kind = ev.get("event")
            if kind == "captured":
                self.progress.update(self.waiting, description="captured the first training step", total=1,
                                     completed=1)
            elif kind == "warmup":
                self.progress.update(self.waiting, description=str(ev.get("message", "following a warmup")),
                                     total=ev.get("total"), completed=ev.get("step", 0))
            elif kind == "check-start":
                self.tasks[ev["check"]] = self.progress.add_task(ev["check"], total=None)
            elif kind == "step" and ev.get("check") in self.tasks:
                self.progress.update(self.tasks[ev["check"]], completed=ev["step"], total=ev["total"])
            elif kind == "check-end" and ev.get("check") in self.tasks:
                style = probe_report.STATUS_STYLE.get(ev.get("status"), "")
                task = self.tasks[ev["check"]]
                total = self.progress.tasks[task].total or 1
                self.progress.update(task, description=f"{ev['check']} [{style}]{ev.get('status')}[/]",
                                     total=total, completed=total)
            self._show_eta()

    def _show_eta(self) -> None:
        left = self.eta.left()
        if left is None:
            return
        text = f"time left: about {duration(left)} (elapsed {duration(self.eta.elapsed())})"
        self.progress.update(self.overall, description=text)
        if not self.warned and self.eta.elapsed() + left > self.timeout:
            self.warned = True
            self.console.print(f"at this pace the probe needs about {duration(self.eta.elapsed() + left)}, more than "
                               f"--timeout {self.timeout:.0f} s: the checks left when it runs out are not run — "
                               "raise --timeout", style="yellow", markup=False, highlight=False)
