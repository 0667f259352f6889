"""Per-check time budgets: a check that trains stops its loop when its budget is spent and reports what it measured
so far ("stopped after its 120 s budget at step 15 of 60"), so one slow check never times the whole probe out.
With them, a whole probe of an ImageNet-size ResNet-50 on CPU fits in ``PROBE_TIMEOUT_S``, the command line's
default timeout. Standard library only: the parent reads the table for its time estimate."""

from __future__ import annotations

import os
import time
from typing import Any, Callable

# seconds of training each check may spend (its single forward / backward passes come on top)
BUDGET_S = {
    "overfit-batch": 120.0,
    "generalization": 60.0,
    "input-independence": 90.0,  # its zeroed-input fit (the real-input curve is overfit-batch's, when it ran)
    "gradient-flow": 60.0,
    "lr-range": 60.0,
}
# the CLI's default --timeout: tests/probes/scripts/imagenet_resnet50.py (batch 16, 224x224, CPU) took 725 s in
# all on a 2-core machine under a load of 7 (issue 10's measurement; see the README)
PROBE_TIMEOUT_S = 900.0
PARTIAL = "a partial result: raise --check-budget, or probe on a GPU, for the full one"
# roughly how many training steps each check takes at the default --steps, as multiples of --steps (the ETA)
USUAL_STEPS = {"overfit-batch": 1.0, "generalization": 0.9, "input-independence": 1.1, "gradient-flow": 0.25,
                  "lr-range": 1.0, "batch-independence": 0.05, "time-independence": 0.05}
BUDGET_ENV = "TORCHSANITY_CHECK_BUDGET"  # `probe --check-budget S`: every budgeted check gets S seconds


def budget_seconds(check: str) -> float:
    """The budget of ``check``: ``--check-budget`` (through the environment the child inherits) or the default."""
    try:
        override = float(os.environ.get(BUDGET_ENV, ""))
    except ValueError:
        override = 0.0
    return override if override > 0 else BUDGET_S.get(check, 60.0)


class Budget:
    """The time a check may spend training: ``stop(inner)`` ends a ``ctx.train`` loop once it is spent, and
    ``stopped`` says so in the check's words."""

    def __init__(self, check: str, seconds: float | None = None):
        self.check = check
        self.seconds = float(seconds if seconds is not None else budget_seconds(check))
        self.started = time.perf_counter()
        self.hit = False

    def spent(self) -> bool:
        """True (and remembered) once the budget is used up."""
        if time.perf_counter() - self.started > self.seconds:
            self.hit = True
        return self.hit

    def stop(self, inner: Callable[[list[float]], bool] | None = None) -> Callable[[list[float]], bool]:
        """A ``stop`` callback for ``ctx.train``: ``inner``'s answer, or True once the budget is spent. ``inner`` is
        always called first (it may record something at each step)."""

        def check(losses: list[float]) -> bool:
            done = bool(inner(losses)) if inner is not None else False
            return done or self.spent()

        return check

    def stopped(self, done: int, planned: int) -> str:
        """The phrase for a loop cut short: "stopped after its 120 s budget at step 15 of 60"."""
        return f"stopped after its {self.seconds:g} s budget at step {done} of {planned}"

    def mark(self, result: Any, done: int, planned: int) -> Any:
        """Add the budget note to a verdict (message and ``measured['stopped']``) when the budget cut it short."""
        if not self.hit:
            return result
        note = self.stopped(done, planned)
        result.message = f"{result.message} ({note}: {PARTIAL})"
        if isinstance(result.measured, dict):
            result.measured["stopped"] = note
        elif result.measured is None:
            result.measured = {"stopped": note}
        return result
