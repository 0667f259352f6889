"""Past a warmup from learning rate 0 without --step: the probe lets the script train on and probes the first step
where the rate has stopped rising (probes/warmup.py). Real CLI runner and real torch on CPU, on
tests/probes/scripts/warmup_from_zero_classifier.py (a script of our own: SGD built with lr=0, the rate written
into the param groups by hand, base * step / warmup, then a cosine decay); the decision itself on real optimizers.
With --step given the probe keeps today's behaviour (test_warmup_from_zero.py)."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torchsanity.probes.warmup import FOLLOW_STEPS, WarmupFollow, zero_at
from torchsanity.server.probe_report import render_text
from torchsanity.server.probe_runner import run_probe

SCRIPT = str(Path(__file__).resolve().parent / "scripts" / "warmup_from_zero_classifier.py")
WARMUP = 12  # the script's rate is base * step / WARMUP for 0-based steps 0 .. WARMUP - 1, base at WARMUP,
PAST = WARMUP + 2  # then falls: training step WARMUP + 2 (1-based) is the first whose rate did not rise
BASE = 0.05
BATCHES = 1024 // 32  # one epoch of the script's data at its default batch size
FITTING = ["overfit-batch", "generalization", "input-independence"]
EVENTS: list[dict] = []  # the "ended" run's progress events


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=1)
    args = ["--warmup-steps", str(WARMUP), "--base-lr", str(BASE)]
    futures = {
        "auto": pool.submit(run_probe, SCRIPT, args, timeout=300, checks=["initial-loss", *FITTING, "gradient-flow",
                                                                         "lr-range", "determinism"]),
        "ended": pool.submit(run_probe, SCRIPT, ["--warmup-steps", "200", "--epochs", "1"], timeout=300,
                             checks=["overfit-batch", "lr-range"], on_event=EVENTS.append),
    }

    def get(key):
        outcome = futures[key].result(timeout=900)
        assert "error" not in outcome.report, outcome.report.get("error")
        return outcome, {c["id"]: c for c in outcome.report["checks"]}

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


def test_the_probe_follows_the_warmup_and_runs_the_fitting_checks_there(runs):
    outcome, checks = runs("auto")
    step = outcome.report["step"]
    assert step["index"] == PAST, step
    assert step["warmup"]["zero_at"] == 1 and step["warmup"]["outcome"] == "past", step["warmup"]
    assert outcome.report["optimizer"]["lr"][0] > 0.9 * BASE  # the rate after the warmup, not 0
    for cid in ("overfit-batch", "input-independence"):
        assert checks[cid]["status"] in ("pass", "warn"), checks[cid]
    assert "learning rate" not in checks["generalization"]["message"], checks["generalization"]
    assert checks["generalization"]["status"] != "fail", checks["generalization"]
    assert "not judged" not in checks["gradient-flow"]["message"], checks["gradient-flow"]
    assert checks["lr-range"]["status"] in ("pass", "warn") and checks["lr-range"]["measured"]["configured"] > 0
    text = render_text(outcome.report)
    assert "the learning rate was 0 at training step 1 (a warmup from 0 set by hand)" in text, text
    assert f"probed training step {PAST}, where the warmup is over" in text, text


def test_initial_loss_and_determinism_know_a_later_step_was_probed(runs):
    outcome, checks = runs("auto")
    assert checks["initial-loss"]["status"] == "skip"
    assert f"training step {PAST} was probed (past a warmup from learning rate 0)" in checks["initial-loss"]["message"]
    # the fingerprint is the first step's, as in the determinism run: a seeded script is deterministic
    assert checks["determinism"]["status"] == "pass", checks["determinism"]
    assert outcome.exit_code == 0


def test_a_script_that_ends_inside_its_warmup_skips_the_fitting_checks_saying_how_far_it_looked(runs):
    outcome, checks = runs("ended")
    step = outcome.report["step"]
    assert step["index"] == BATCHES and step["warmup"]["outcome"] == "ended", step
    fit = checks["overfit-batch"]
    assert fit["status"] == "skip", fit
    assert f"still rising, at training step {BATCHES}, the last step the script ran" in fit["message"], fit
    assert "--step N" in fit["message"]
    sweep = checks["lr-range"]
    assert sweep["status"] == "skip" and "still in a warmup from 0" in sweep["message"], sweep


# -- the decision, on real optimizers ---------------------------------------------------------------------
def _sgd(lr: float) -> torch.optim.Optimizer:
    return torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=lr)


def _follow(opt: torch.optim.Optimizer, rates, **kw) -> WarmupFollow:
    """Set each rate as a script would before its step; stop where the follower says to probe."""
    for g in opt.param_groups:
        g["lr"] = rates[0]
    follow = WarmupFollow(opt, 1, **kw)
    for i, lr in enumerate(rates[1:], start=2):
        for g in opt.param_groups:
            g["lr"] = lr
        if not follow.see(i):
            break
    return follow


def test_only_an_unreadable_warmup_from_zero_is_followed():
    assert zero_at(_sgd(0.0))  # built with lr=0, nothing to read the working rate from
    warm = _sgd(0.1)
    for g in warm.param_groups:
        g["lr"] = 0.0
    assert not zero_at(warm)  # the constructor's lr: the workbench raises the groups to it
    sched = torch.optim.lr_scheduler.LambdaLR(_sgd(0.1), lambda s: s / 10)
    assert not zero_at(sched.optimizer)  # the scheduler's initial_lr
    assert not zero_at(_sgd(0.01))


def test_a_linear_warmup_is_followed_to_the_first_step_that_does_not_rise():
    follow = _follow(_sgd(0.0), [0.1 * min(1.0, s / 5) for s in range(20)])
    assert (follow.outcome, follow.step) == ("past", 7)  # rates rise up to the 6th step, the 7th equals it
    assert follow.skip_reason() is None and "probed training step 7" in follow.note()


def test_a_rate_that_jumps_from_zero_is_probed_once_it_holds():
    follow = _follow(_sgd(0.0), [0.0, 0.0, 0.0, 0.1, 0.1, 0.1])
    assert (follow.outcome, follow.step) == ("past", 5)


def test_a_rate_that_stays_zero_is_followed_up_to_the_step_cap():
    follow = _follow(_sgd(0.0), [0.0] * (FOLLOW_STEPS + 10))
    assert (follow.outcome, follow.step) == ("limit", FOLLOW_STEPS + 1)
    reason = follow.skip_reason()
    assert "was still 0 at training step" in reason and f"at most {FOLLOW_STEPS} steps" in reason, reason


def test_following_stops_at_a_tenth_of_the_timeout():
    ticks = iter(range(0, 10000, 4))  # 4 s per reading of the clock
    follow = _follow(_sgd(0.0), [0.0] * 100, timeout=100, clock=lambda: next(ticks))
    assert follow.outcome == "limit" and follow.seconds == 10 and follow.step < 10
    assert math.isclose(follow.to_json()["max_seconds"], 10)


def test_following_a_warmup_reports_progress_on_the_way(runs):
    """The probe may train for up to a minute while it follows a warmup: the caller hears where it is (the CLI's
    progress line, the editor's work-done progress), every ten training steps."""
    runs("ended")
    warmup = [e for e in EVENTS if e.get("event") == "warmup"]
    assert [e["step"] for e in warmup] == list(range(0, BATCHES, 10)), warmup
    assert warmup[-1]["total"] == FOLLOW_STEPS and 0 < warmup[-1]["lr"] < 0.1
    assert warmup[1]["message"].startswith("following a warmup from learning rate 0: training step 11, lr ")
    assert EVENTS.index(warmup[-1]) < next(i for i, e in enumerate(EVENTS) if e.get("event") == "check-start")
