"""The run itself (issue 10, item 8): per-check time budgets that end a slow check with a partial verdict instead
of timing the probe out, the time left in the terminal's progress, and a timeout that names --timeout and lists the
checks that did not run. Real CLI, real torch on CPU, an STL-10-size CNN whose steps are slow enough to matter."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_checks_unit import blobs, run_check
from torch import nn
from torchsanity.probes.budget import BUDGET_ENV, BUDGET_S, Budget
from torchsanity.server.probe_command import add_arguments
from torchsanity.server.probe_progress import Eta, duration

REPO = Path(__file__).resolve().parents[2]
SLOW = str(Path(__file__).resolve().parent / "scripts" / "stl10_convnet.py")
SLOW_STEPS = str(Path(__file__).resolve().parent / "scripts" / "slow_steps_classifier.py")  # 0.33 s a forward
CLI = [sys.executable, "-m", "torchsanity.server", "probe"]


def test_a_budget_stops_a_training_loop_and_says_where():
    budget = Budget("overfit-batch", seconds=0.2)
    calls = []
    stop = budget.stop(lambda losses: calls.append(len(losses)) or False)
    assert stop([1.0]) is False and not budget.hit
    time.sleep(0.25)
    assert stop([1.0, 0.9]) is True and budget.hit and calls == [1, 2]  # the inner callback still ran
    assert budget.stopped(2, 60) == "stopped after its 0.2 s budget at step 2 of 60"
    assert Budget("lr-range").seconds == BUDGET_S["lr-range"]


@pytest.mark.parametrize("cid, status, phrase", [
    ("overfit-batch", "warn", "too few to judge the fit"),  # a plateau over 1 step is no "cannot fit"
    ("generalization", "skip", "too few to judge whether the fit transfers"),
    ("lr-range", "skip", "too few points for a suggestion"),  # neither "flat" nor "diverged"
    ("gradient-flow", "pass", "partial result"),
    ("input-independence", "skip", "partial result"),  # one step moves too little to compare real and zeros
])
def test_every_training_check_cut_by_its_budget_says_so_and_never_overstates(monkeypatch, cid, status, phrase):
    monkeypatch.setenv(BUDGET_ENV, "1e-9")  # spent after the first step
    x, y = blobs()
    res = run_check(cid, nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4)), (x, y), nn.CrossEntropyLoss(),
                    steps=40)
    assert res.status == status and phrase in res.message, res.message
    assert "stopped after its 1e-09 s budget at step" in res.message
    assert res.measured["stopped"].startswith("stopped after its")


def test_the_time_left_follows_the_pace_of_the_steps_and_the_budgets():
    now = [0.0]
    eta = Eta(["initial-loss", "overfit-batch", "lr-range", "determinism"], steps=60, clock=lambda: now[0])
    assert eta.left() is None  # no step timed yet
    eta.on_event({"event": "check-start", "check": "initial-loss"})
    eta.on_event({"event": "check-end", "check": "initial-loss"})
    eta.on_event({"event": "check-start", "check": "overfit-batch"})
    now[0] += 0.2
    eta.on_event({"event": "step", "check": "overfit-batch", "step": 1, "total": 240})
    assert abs(eta.left() - (59 * 0.6 + 60 * 0.6)) < 1e-6  # a first guess from the first forward pass
    for i in range(2, 11):
        now[0] += 0.5
        eta.on_event({"event": "step", "check": "overfit-batch", "step": i, "total": 240})
    # 50 steps left of overfit-batch's usual 60, then lr-range's 60 steps, at a pace that converges on 0.5 s
    assert 0.5 < eta.per_step < 0.52
    assert abs(eta.left() - 110 * eta.per_step) < 1e-6
    now[0] += 1000  # overfit-batch's budget is spent: it stops any moment; lr-range is capped by its own
    eta.on_event({"event": "step", "check": "overfit-batch", "step": 11, "total": 240})
    assert eta.left() <= BUDGET_S["lr-range"] + 1e-6
    assert duration(45) == "45 s" and duration(200) == "3 min 20 s"


def test_a_check_past_its_budget_stops_with_a_partial_result_not_a_timeout():
    proc = subprocess.run([*CLI, "--format", "json", "--checks", "overfit-batch,lr-range,gradient-flow",
                           "--check-budget", "0.5", SLOW], cwd=REPO, capture_output=True, text=True, timeout=500,
                          check=False)
    report = json.loads(proc.stdout)
    assert "error" not in report and not report.get("timed_out"), report.get("error")
    checks = {c["id"]: c for c in report["checks"]}
    overfit = checks["overfit-batch"]
    assert "stopped after its 0.5 s budget at step" in overfit["message"], overfit
    assert overfit["measured"]["stopped"].endswith("of 60") and overfit["measured"]["steps"] < 60
    assert overfit["status"] in ("pass", "warn")  # a budget-cut plateau is never "cannot fit"
    assert "partial result" in checks["lr-range"]["message"] and checks["lr-range"]["measured"]["stopped"]
    assert checks["gradient-flow"]["measured"]["ratio_steps"] < 10
    assert proc.returncode in (0, 1)


def test_the_terminal_shows_the_time_left_and_the_timeout_names_the_option():
    master, slave = pty.openpty()
    # 60 overfit steps at >= 0.33 s a forward cannot end within 20 s, on any machine
    proc = subprocess.Popen([*CLI, "--checks", "overfit-batch,lr-range", "--timeout", "20", SLOW_STEPS], cwd=REPO,
                            stdout=subprocess.PIPE, stderr=slave, stdin=subprocess.DEVNULL, text=True,
                            env=dict(os.environ, COLUMNS="160"))
    os.close(slave)
    seen = b""
    while True:
        ready, _, _ = select.select([master], [], [], 1.0)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        elif proc.poll() is not None:
            break
    stdout = proc.communicate(timeout=120)[0]
    os.close(master)
    terminal = seen.decode(errors="replace")
    assert "time left: about" in terminal, terminal[-2000:]
    assert "raise --timeout" in terminal  # 20 s cannot hold two budgeted checks at this pace
    assert proc.returncode == 2
    assert "TIMED OUT" in stdout and "raise --timeout" in stdout
    assert "not run:" in stdout and "lr-range" in stdout.split("not run:")[1]


def test_the_default_timeout_holds_every_budget_with_room_for_the_script():
    parser = __import__("argparse").ArgumentParser()
    add_arguments(parser)
    default = parser.parse_args(["x.py"]).timeout
    # the budgets, one training step of each unbudgeted check and the script's start on an ImageNet-size
    # ResNet-50 on CPU (measured: see the README) fit in the default
    assert sum(BUDGET_S.values()) + 180 < default
