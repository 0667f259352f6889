"""Optimizers and losses as scripts write them (issue 10, item 4): summed losses, sums of several terms, losses
returned inside dataclasses / named tuples / dicts, LBFGS's closure and updates written by hand — real scripts, real torch on CPU."""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"

RUNS = {
    "sum_ce": ("sum_reduced_classifier", [], ["initial-loss", "overfit-batch"]),
    "vae": ("vae_sum_kld", [], ["initial-loss"]),
    "dataclass": ("loss_in_outputs", ["--outputs", "dataclass"], ["initial-loss", "overfit-batch"]),
    "namedtuple": ("loss_in_outputs", ["--outputs", "namedtuple"], ["overfit-batch"]),
    "dict": ("loss_in_outputs", ["--outputs", "dict"], ["overfit-batch"]),
    "lbfgs": ("lbfgs_regression", [], ["initial-loss", "overfit-batch", "lr-range", "gradient-flow"]),
    "manual_sgd": ("manual_sgd", [], ["overfit-batch", "lr-range"]),
    "manual_sign": ("manual_sign_update", [], ["initial-loss", "overfit-batch"]),
}


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {key: pool.submit(run_probe, str(SCRIPTS / f"{name}.py"), args, checks=checks, timeout=180)
               for key, (name, args, checks) in RUNS.items()}

    def get(key):
        outcome = futures[key].result(timeout=600)
        assert "error" not in outcome.report, outcome.report.get("error")
        return outcome

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


def _check(outcome, cid):
    return next(c for c in outcome.report["checks"] if c["id"] == cid)


def test_sum_reduced_cross_entropy_is_judged_per_sample(runs):
    outcome = runs("sum_ce")
    check = _check(outcome, "initial-loss")
    assert check["status"] == "pass", check
    measured = check["measured"]
    assert measured["reduction"] == "sum" and measured["elements"] == 32
    assert measured["total"] > 32 * 0.9 * math.log(10)  # the summed value, which a per-batch mean would FAIL
    assert math.isclose(measured["loss"], measured["total"] / 32, rel_tol=1e-6)
    assert math.isclose(check["expected"], math.log(10))
    assert "per sample (reduction='sum' over 32 samples" in check["message"]
    assert _check(outcome, "overfit-batch")["status"] == "pass"
    assert outcome.exit_code == 0


def test_sum_of_several_terms_skips_initial_loss_with_the_reason(runs):
    check = _check(runs("vae"), "initial-loss")
    assert check["status"] == "skip", check
    assert "not the bce criterion alone" in check["message"]
    assert check["details"] == {"criterion": "bce"}


@pytest.mark.parametrize("kind", ["dataclass", "namedtuple", "dict"])
def test_loss_returned_inside_the_model_outputs_is_driven(runs, kind):
    outcome = runs(kind)
    assert outcome.report["loss"]["kind"] == "cross-entropy"
    check = _check(outcome, "overfit-batch")
    assert check["status"] == "pass", check
    assert check["measured"]["best"] < 0.3 * check["measured"]["start"]
    if kind == "dataclass":
        assert _check(outcome, "initial-loss")["status"] == "pass"


def test_lbfgs_closure_optimizer_is_stepped_with_a_closure(runs):
    outcome = runs("lbfgs")
    statuses = {c["id"]: c["status"] for c in outcome.report["checks"]}
    assert statuses == {"initial-loss": "pass", "overfit-batch": "pass", "lr-range": "skip",
                        "gradient-flow": "pass"}, [(c["id"], c["message"]) for c in outcome.report["checks"]]
    assert outcome.report["step"]["index"] == 1
    assert outcome.report["step"]["followed_by"] == "optimizer step (closure)"
    assert "LBFGS steps with a closure" in _check(outcome, "lr-range")["message"]
    overfit = _check(outcome, "overfit-batch")["measured"]
    assert overfit["best"] < 1e-3 * overfit["start"]  # a closure that re-evaluates: LBFGS converges
    assert "not judged: LBFGS" in _check(outcome, "gradient-flow")["message"]


def test_hand_written_sgd_trains_with_plain_sgd_at_the_scripts_rate(runs):
    outcome = runs("manual_sgd")
    assert outcome.report["optimizer"]["type"] == "SGD"
    assert outcome.report["optimizer"]["lr"] == [pytest.approx(0.1, rel=1e-3)]  # the script's lr = 0.1
    assert any("plain torch.optim.SGD at the script's learning rate 0.1" in n for n in outcome.report["notes"])
    overfit = _check(outcome, "overfit-batch")
    assert overfit["status"] == "pass", overfit
    assert _check(outcome, "lr-range")["status"] in ("pass", "warn")


def test_hand_written_update_that_is_not_sgd_skips_training_checks_with_the_reason(runs):
    outcome = runs("manual_sign")
    overfit = _check(outcome, "overfit-batch")
    assert overfit["status"] == "skip"
    assert "not plain SGD" in overfit["message"]
    assert _check(outcome, "initial-loss")["status"] == "pass"
    assert outcome.report["optimizer"] is None


def test_sgd_rate_reads_the_learning_rate_off_a_plain_update_only():
    import torch
    from torchsanity.probes.capture import sgd_rate

    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(4, 3)), torch.nn.Parameter(torch.randn(3))]
    before = [p.detach().clone() for p in params]
    grads = [torch.randn_like(p) for p in params]
    with torch.no_grad():
        for p, g in zip(params, grads):
            p.add_(g, alpha=-0.05)
    lr, why = sgd_rate(params, before, grads)
    assert why is None and lr == pytest.approx(0.05, rel=1e-4)
    with torch.no_grad():
        for p, b, g in zip(params, before, grads):
            p.copy_(b - 0.05 * g.sign())
    lr, why = sgd_rate(params, before, grads)
    assert lr is None and "not plain SGD" in why


def test_reduction_of_reads_the_legacy_arguments_too():
    from torchsanity.probes.capture import LossCall
    from torchsanity.probes.replay import reduction_of

    def call(**kwargs):
        return LossCall("mse", "mse_loss", None, None, kwargs, None, 0, None)

    assert reduction_of(call()) == "mean"
    assert reduction_of(call(reduction="sum")) == "sum"
    assert reduction_of(call(size_average=False)) == "sum"
    assert reduction_of(call(size_average=None, reduce=False)) == "none"
