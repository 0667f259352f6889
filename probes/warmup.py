"""Past a warmup from learning rate 0, without ``--step``.

A warmup written into the param groups by hand (Barlow Twins' ``lr = base * step / warmup``, on an optimizer built
with ``lr=0``) leaves no scheduler ``initial_lr`` or constructor lr to read the working rate from, so at the first
training step every group's rate is 0 and fitting there says nothing. When the user did not pick the step, the
probe lets the script train on — exactly as ``--step N`` would, in the same process, under the same guard and
time budget — and reads the rate at each training step; it probes the first step where the rate is above 0 and has
stopped rising (the warmup is over). It follows for at most ``FOLLOW_STEPS`` training steps and ``FOLLOW_SECONDS``
(a tenth of the probe's ``--timeout`` when that is less); past that, or when the script ends first, the step
reached is probed and the checks that fit at the script's rate skip, saying how far the probe looked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .workbench import probed_lrs

FOLLOW_STEPS = 1000  # training steps the probe follows a warmup for, at most
FOLLOW_SECONDS = 60.0  # and seconds (a tenth of --timeout when that is less)
PROGRESS_EVERY = 10  # a progress event every this many followed steps


def zero_at(optimizer: Any) -> bool:
    """Every parameter group would train at learning rate 0 (no warmup base to raise it to)."""
    try:
        lrs = probed_lrs(optimizer)
    except Exception:
        return False
    return bool(lrs) and all(lr == 0 for lr in lrs)


class WarmupFollow:
    """Follows the learning rate of ``optimizer`` from training step ``first`` (where it is 0 in every group)
    until the warmup is over, or the limits are reached; what the report says about it."""

    def __init__(self, optimizer: Any, first: int, *, timeout: float | None = None,
                 clock: Callable[[], float] = time.monotonic):
        self.optimizer = optimizer
        self.first = first
        self.clock = clock
        self.started = clock()
        self.seconds = FOLLOW_SECONDS if not timeout else min(FOLLOW_SECONDS, 0.1 * float(timeout))
        self.previous = probed_lrs(optimizer)
        self.step = first  # the last training step seen
        self.lrs = list(self.previous)
        self.outcome: str | None = None  # "past" (the warmup is over), "limit", "ended" (the script ended first)
        self.elapsed = 0.0  # seconds followed, when the outcome was decided
        self.last: Any = None  # the last training step seen (its capture), probed when the script ends first

    def see(self, step: int, last: Any = None) -> bool:
        """Training step ``step`` is about to update: True to let the script train on, False to probe it."""
        if self.outcome is not None:
            return False
        self.step, self.last = step, last
        try:
            lrs = probed_lrs(self.optimizer)
        except Exception:  # a learning rate that is no number any more: stop following
            return self._decide("limit")
        rising = len(lrs) != len(self.previous) or any(a > b for a, b in zip(lrs, self.previous))
        self.previous, self.lrs = lrs, lrs
        if any(lr > 0 for lr in lrs) and not rising:
            return self._decide("past")
        if step - self.first >= FOLLOW_STEPS or self.clock() - self.started >= self.seconds:
            return self._decide("limit")
        return True

    def progress_event(self) -> dict | None:
        """The progress event for the step just seen (the first, then every ``PROGRESS_EVERY`` steps): the probe
        may train for a minute here, and the person waiting sees why."""
        followed = self.step - self.first
        if followed % PROGRESS_EVERY:
            return None
        lr = max(self.lrs) if self.lrs else 0.0
        return {"event": "warmup", "step": followed, "total": FOLLOW_STEPS, "lr": lr,
                "message": f"following a warmup from learning rate 0: training step {self.step}, lr {lr:.3g}"}

    def script_ended(self) -> None:
        """The script finished while the probe was still following the warmup."""
        if self.outcome is None:
            self._decide("ended")

    def give_up(self) -> None:
        """Stop following here (something went wrong while following): this step is probed as it is."""
        if self.outcome is None:
            self._decide("limit")

    def _decide(self, outcome: str) -> bool:
        self.outcome, self.elapsed = outcome, self.clock() - self.started
        return False

    def where(self) -> str:
        """The learning rate at the probed step, in words."""
        lr = max(self.lrs) if self.lrs else 0.0
        return "still 0" if lr == 0 else f"{lr:.3g}, still rising,"

    def how_far(self) -> str:
        """Why the probe stopped following, in words."""
        if self.outcome == "ended":
            return "the last step the script ran"
        return (f"where the probe stopped following ({self.step - self.first} steps, {self.elapsed:.0f} "
                f"s; it follows at most {FOLLOW_STEPS} steps or {self.seconds:.0f} s)")

    def skip_reason(self) -> str | None:
        """Why the checks that fit at the script's rate skip at the probed step; None when the warmup is over."""
        if self.outcome in (None, "past"):
            return None
        return (f"the learning rate was 0 in every parameter group at training step {self.first} (a warmup from 0 set "
                f"by hand, with no scheduler or constructor lr to read the base value from) and was {self.where()} "
                f"at training step {self.step}, {self.how_far()}: training at a warmup's rate says little — probe a "
                "step past the warmup with --step N")

    def note(self) -> str:
        """The report's note: which step was probed, and why."""
        if self.outcome == "past":
            lr = max(self.lrs)
            return (f"the learning rate was 0 at training step {self.first} (a warmup from 0 set by hand): the probe "
                    f"let the script train on and probed training step {self.step}, where the warmup is over "
                    f"(lr {lr:.3g}); --step N picks another step")
        return (f"the learning rate was 0 at training step {self.first} (a warmup from 0 set by hand) and was "
                f"{self.where()} at training step {self.step}, {self.how_far()}: that step was probed, and the checks "
                "that fit at the script's rate skip")

    def to_json(self) -> dict:
        """The report's ``step.warmup`` entry."""
        return {"zero_at": self.first, "probed": self.step, "outcome": self.outcome, "lr": list(self.lrs),
                "followed_steps": self.step - self.first, "seconds": round(self.elapsed, 3),
                "max_steps": FOLLOW_STEPS, "max_seconds": self.seconds}
