"""A warmup from learning rate 0 set by hand (found on facebookresearch/barlowtwins' pattern: LARS built with lr=0,
the lr written into the param groups each step, 0 at step 0): training at lr 0 changes nothing, so the checks that
fit at the script's learning rate skip with the reason and the way out (--step N), instead of "cannot fit" and
"lr 0 is 300× too low", when the step is given (--step 1; without it the probe follows the warmup past 0, as
test_past_warmup.py shows); a model that returns its own batch-level loss says so in batch-independence. Real CLI runner,
real torch on CPU, on tests/probes/scripts/redundancy_reduction_ssl.py (a script of our own)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchsanity.server.probe_runner import run_probe

SCRIPT = str(Path(__file__).resolve().parent / "scripts" / "redundancy_reduction_ssl.py")
CHECKS = ["overfit-batch", "generalization", "input-independence", "batch-independence", "gradient-flow", "lr-range"]


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=1)
    futures = {key: pool.submit(run_probe, SCRIPT, checks=CHECKS, timeout=300, step=step)
               for key, step in (("first", 1), ("past_warmup", 12))}

    def get(key):
        outcome = futures[key].result(timeout=900)
        assert "error" not in outcome.report, outcome.report.get("error")
        return outcome, {c["id"]: c for c in outcome.report["checks"]}

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


def test_the_fitting_checks_skip_at_learning_rate_zero_and_name_the_way_out(runs):
    outcome, checks = runs("first")
    assert outcome.report["optimizer"]["lr"] == [0.0]
    assert outcome.report["step"]["index"] == 1 and "warmup" not in outcome.report["step"]  # --step given: not followed
    for cid in ("overfit-batch", "generalization", "input-independence"):
        assert checks[cid]["status"] == "skip", checks[cid]
        assert "the learning rate is 0 in every parameter group" in checks[cid]["message"]
        assert "--step N" in checks[cid]["message"]
    sweep = checks["lr-range"]
    assert sweep["status"] == "skip" and "learning rate is 0 at the probed step" in sweep["message"], sweep
    assert sweep["measured"]["suggested"] > 0  # the sweep still ran and says where the loss falls fastest
    flow = checks["gradient-flow"]
    assert flow["status"] == "pass" and "update/weight ratio not judged" in flow["message"], flow
    assert outcome.exit_code == 0  # nothing failed: lr 0 is a warmup, not a bug


def test_a_model_returning_its_batch_level_loss_is_named_in_batch_independence(runs):
    _, checks = runs("first")
    check = checks["batch-independence"]
    assert check["status"] == "skip" and "the model returns a scalar" in check["message"], check


def test_a_step_past_the_warmup_is_probed_at_its_real_learning_rate(runs):
    outcome, checks = runs("past_warmup")
    assert outcome.report["step"]["index"] == 12
    assert checks["overfit-batch"]["status"] == "pass", checks["overfit-batch"]
    assert checks["input-independence"]["status"] == "pass", checks["input-independence"]
    assert checks["lr-range"]["status"] in ("pass", "warn") and checks["lr-range"]["measured"]["configured"] > 0
    assert "not judged" not in checks["gradient-flow"]["message"]
