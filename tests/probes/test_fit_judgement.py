"""Checks that judge what they measure (issue 10, item 6): overfit-batch with regularisation off and escalating
steps, input-independence on batches sorted by label and on diverging runs, data-stats' label imbalance by a
chi-square test. Real scripts and real torch on CPU."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from test_checks_unit import blobs
from torch import nn
from torchsanity.probes.checks import CHECKS
from torchsanity.probes.checks.data_stats import (
    IMBALANCE_P,
    _upper_gamma,
    chi_square_uniform,
)
from torchsanity.probes.context import ProbeContext, loss_info, scalar
from torchsanity.probes.entry import EntryStep
from torchsanity.probes.replay import held_out_part
from torchsanity.probes.workbench import Workbench
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"

RUNS = {
    "regularised": ("regularised_classifier", [], ["overfit-batch"]),
    "vae": ("vae_sum_kld", [], ["overfit-batch"]),
    "sorted": ("sorted_labels_classifier", [], ["input-independence"]),
    "lr25": ("lr25", [], ["input-independence"]),
    "natural": ("digit_batches", [], ["data-stats"]),
    "skewed": ("digit_batches", ["--skewed"], ["data-stats"]),
    "skewed20": ("digit_batches", ["--skewed", "--classes", "20"], ["data-stats"]),
}


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {key: pool.submit(run_probe, str(SCRIPTS / f"{name}.py"), args, checks=checks, timeout=180)
               for key, (name, args, checks) in RUNS.items()}

    def get(key):
        outcome = futures[key].result(timeout=600)
        assert "error" not in outcome.report, outcome.report.get("error")
        return {c["id"]: c for c in outcome.report["checks"]}

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


def test_overfit_turns_dropout_and_weight_decay_off_on_the_copies_and_restores_them():
    torch.manual_seed(0)
    x, y = torch.randn(64, 8), torch.randint(0, 4, (64,))  # random labels: only memorisation fits them
    model = nn.Sequential(nn.Linear(8, 128), nn.ReLU(), nn.Dropout(0.7), nn.Linear(128, 4), nn.Dropout(0.5))
    step = EntryStep(model, (x, y), nn.CrossEntropyLoss(),
                     lambda params: torch.optim.AdamW(params, lr=3e-3, weight_decay=0.5))
    _, loss = step.observe()
    wb = Workbench(step.models, step.optimizer)
    step.choose_sub_batch(wb)
    ctx = ProbeContext(step, wb, loss_info(step.loss_call, scalar(loss)), steps=60, sites={})
    res = CHECKS["overfit-batch"](ctx)
    assert res.status == "pass", res.message
    assert "dropout (2 layers) and weight decay (0.5) turned off for the fit" in res.message
    assert res.measured["regularisation_off"] == ["dropout (2 layers)", "weight decay (0.5)"]
    copy = wb.models[0]
    assert (copy[2].p, copy[4].p) == (0.7, 0.5) and copy.training
    assert [g["weight_decay"] for g in wb.optimizer.param_groups] == [0.5]
    assert (model[2].p, step.optimizer.param_groups[0]["weight_decay"]) == (0.7, 0.5)  # the user's are untouched


def test_a_regularised_script_is_fitted_with_regularisation_off_and_says_so(runs):
    check = runs("regularised")["overfit-batch"]
    assert check["status"] == "pass", check
    assert "dropout (2 layers) and weight decay (0.5) turned off" in check["message"]


def test_a_slow_vae_fit_escalates_its_steps_and_warns_with_the_curve(runs):
    check = runs("vae")["overfit-batch"]
    assert check["status"] == "warn", check  # a slow fit is not an impossible one
    assert 60 < check["measured"]["steps"] <= 240  # continued past the configured 60 steps while still falling
    assert len(check["series"]["loss"]) == check["measured"]["steps"]
    assert check["measured"]["final"] < 0.8 * check["measured"]["start"]


def test_no_progress_at_all_is_still_a_fail():
    x, y = blobs()
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    step = EntryStep(model, (x, y), nn.CrossEntropyLoss(), lambda params: torch.optim.Adam(params, lr=1e-9))
    _, loss = step.observe()
    wb = Workbench(step.models, step.optimizer)
    step.choose_sub_batch(wb)
    res = CHECKS["overfit-batch"](ProbeContext(step, wb, loss_info(step.loss_call, scalar(loss)), steps=20, sites={}))
    assert res.status == "fail" and "plateaus" in res.message
    assert res.measured["steps"] == 20  # nothing falling: no escalation


def test_a_batch_sorted_by_label_is_fitted_on_a_sub_batch_with_both_labels(runs):
    check = runs("sorted")["input-independence"]
    assert check["status"] == "pass", check  # the first 8 samples are all class 0: it used to skip


def test_sub_batch_window_and_its_held_out_samples():
    x = torch.randn(48, 10)
    y = torch.cat([torch.zeros(24), torch.ones(24)])
    step = EntryStep(nn.Linear(10, 1), (x, y[:, None]), nn.BCEWithLogitsLoss(),
                     lambda params: torch.optim.SGD(params, lr=0.1))
    step.observe()
    step.choose_sub_batch(Workbench(step.models, step.optimizer))
    assert (step.sub_batch, step.sub_start) == (8, 20)
    assert set(step.target_batch()[20:28].reshape(-1).tolist()) == {0.0, 1.0}
    assert held_out_part(8, 48, 20) == (8, 28)
    assert held_out_part(8, 48, 40) == (8, 32)  # a window at the end holds out the samples before it
    assert held_out_part(8, 12, 0) == (4, 8)


def test_both_runs_diverging_fails_input_independence_with_the_reason(runs):
    check = runs("lr25")["input-independence"]
    assert check["status"] == "fail", check
    assert "diverges with real inputs" in check["message"] and "with zeroed inputs" in check["message"]


def test_chi_square_p_values_match_the_tables():
    assert abs(chi_square_uniform([26, 1, 1, 1, 1, 1, 1, 0, 0, 0])[0] - 181.125) < 1e-9
    # 5 % critical values of chi-square: 3.841 (1 degree of freedom), 16.919 (9)
    assert chi_square_uniform([5, 5]) == (0.0, 1.0) and chi_square_uniform([0, 0]) == (0.0, 1.0)
    assert abs(_upper_gamma(0.5, 3.841 / 2) - 0.05) < 1e-3
    assert abs(_upper_gamma(4.5, 16.919 / 2) - 0.05) < 1e-3


def test_natural_sampling_noise_is_not_imbalance(runs):
    check = runs("natural")["data-stats"]
    labels = check["measured"]["labels"]
    assert check["status"] == "pass", check
    assert labels["count"] == 32 and labels["classes"] == 10 and labels["p_value"] > IMBALANCE_P


@pytest.mark.parametrize("key, classes", [("skewed", 10), ("skewed20", 20)])
def test_one_class_at_80_percent_is_imbalance(runs, key, classes):
    check = runs(key)["data-stats"]
    assert check["status"] == "warn", check
    assert "labels are imbalanced in this batch: class 0 holds 78% of 32 samples" in check["message"]
    assert check["measured"]["labels"]["classes"] == classes and check["measured"]["labels"]["p_value"] < 1e-10
