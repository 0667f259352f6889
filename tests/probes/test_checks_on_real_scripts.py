"""Checks that judge what they measure (issue 10, items 6 and 8), through the real CLI on realistic scripts with
real torch on CPU: data-stats on regression targets' scale and on a language model's hidden state, initial-loss on
a character model's token frequencies and on a DCGAN's two steps, gradient-flow and lr-range agreeing on the
learning rate, lr-range on a non-finite first loss."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = Path(__file__).resolve().parent / "scripts"
RUNS = {
    "prices": ("house_prices_regression", ["data-stats", "initial-loss"], []),
    "prices_std": ("house_prices_regression", ["data-stats", "initial-loss"], ["--standardise"]),
    "names": ("names_char_rnn", ["data-stats", "initial-loss"], []),
    "lstm_lm": ("rnn_language_model", ["data-stats"], []),
    "adam": ("tabular_mlp_adam", ["gradient-flow", "lr-range"], []),
    "tiny_head": ("tabular_mlp_adam", ["gradient-flow", "lr-range"], ["--head-std", "1e-3"]),
    "slow_lr": ("tabular_mlp_adam", ["gradient-flow", "lr-range"], ["--lr", "1e-5"]),
    "missing": ("tabular_missing_values", ["initial-loss", "lr-range", "data-stats"], []),
    "dcgan": ("dcgan_style", ["initial-loss"], []),
}


def probe_json(script: str, checks: list[str], script_args: list[str], *extra: str) -> tuple[int, dict]:
    """`torchsanity probe --format json` in a subprocess: the exit code and the report."""
    proc = subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", "--format", "json", "--checks",
                           ",".join(checks), *extra, str(SCRIPTS / f"{script}.py"), "--", *script_args], cwd=REPO,
                          capture_output=True, text=True, timeout=400, check=False)
    assert proc.stdout.strip(), proc.stderr
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=2)
    futures = {key: pool.submit(probe_json, *spec) for key, spec in RUNS.items()}

    def get(key):
        code, report = futures[key].result(timeout=900)
        return code, report, {c["id"]: c for c in report["checks"]}

    yield get
    pool.shutdown(wait=True, cancel_futures=True)


def test_regression_targets_far_from_mean_0_std_1_warn_with_the_numbers_and_the_fix(runs):
    code, report, checks = runs("prices")
    assert "error" not in report, report.get("error")
    stats = checks["data-stats"]
    assert stats["status"] == "warn", stats
    target = stats["measured"]["target"]
    assert 1.5e5 < target["mean"] < 2.5e5 and 3e4 < target["std"] < 9e4
    assert abs(stats["measured"]["output"]["mean"]) < 1  # the output layer starts near 0
    message = stats["message"]
    assert f"mean {target['mean']:.4g} and std {target['std']:.4g}" in message
    assert "standardise the targets" in message and "bias to the target mean" in message
    assert checks["initial-loss"]["status"] == "warn" and code == 0

    code, report, checks = runs("prices_std")
    assert checks["data-stats"]["status"] == "pass", checks["data-stats"]
    assert "targets scaled" in checks["data-stats"]["message"]
    assert checks["initial-loss"]["status"] == "pass", checks["initial-loss"]


def test_character_frequencies_are_not_label_imbalance_for_a_language_model(runs):
    code, report, checks = runs("names")
    assert "error" not in report, report.get("error")
    initial = checks["initial-loss"]
    measured = initial["measured"]
    # the character distribution is far from uniform: the classifier rule (gap > 15 % of ln C) would have warned
    assert measured["ln_C"] - measured["target_entropy"] > 0.15 * measured["ln_C"]
    assert initial["status"] == "pass" and measured["tokens"] is True, initial
    assert "imbalanced" not in initial["message"] and "not imbalance" in initial["message"]
    assert "log token frequencies" in initial["message"]
    assert checks["data-stats"]["status"] == "pass" and checks["data-stats"]["measured"]["labels"]["tokens"]
    assert code == 0


def test_data_stats_judges_the_inputs_not_the_recurrent_state(runs):
    code, report, checks = runs("lstm_lm")  # step 1: the hidden state is init_hidden()'s zeros
    assert "error" not in report, report.get("error")
    stats = checks["data-stats"]
    assert stats["status"] == "pass", stats  # zeros of the state would be "input1 is constant"
    assert [k for k in stats["measured"] if k.startswith("input")] == ["input"]
    assert stats["measured"]["input"]["shape"] == [12, 10]


def test_adams_large_first_steps_are_not_judged_alone_and_lr_range_agrees(runs):
    code, report, checks = runs("adam")
    flow, sweep = checks["gradient-flow"], checks["lr-range"]
    per_step = flow["series"]["update_ratio_per_step"]
    assert len(per_step) == 10 and per_step[0] > 0.1  # the first update alone would be "too high"
    assert flow["status"] == "pass" and "median over 10 steps" in flow["message"], flow
    assert flow["measured"]["median_update_ratio"] < per_step[0]
    assert sweep["status"] == "pass" and "consistent with gradient-flow's update / weight ratio" in sweep["message"]
    assert code == 0


def test_a_ratio_off_the_rule_of_thumb_defers_to_the_sweep_and_says_why(runs):
    code, report, checks = runs("tiny_head")
    flow, sweep = checks["gradient-flow"], checks["lr-range"]
    assert flow["measured"]["median_update_ratio"] > 0.1
    assert flow["status"] == "pass" and "lr-range's sweep finds the learning rate 0.05 in its useful range" in \
        flow["message"], flow
    assert sweep["status"] == "pass" and "the sweep measures the loss itself" in sweep["message"], sweep


def test_a_learning_rate_far_too_low_warns_in_both_checks_consistently(runs):
    code, report, checks = runs("slow_lr")
    flow, sweep = checks["gradient-flow"], checks["lr-range"]
    assert flow["status"] == "warn" and "too small" in flow["message"] and "consistent with lr-range" in \
        flow["message"], flow
    assert sweep["status"] == "warn" and "over 300× below" in sweep["message"]
    assert "consistent with gradient-flow" in sweep["message"]
    suggested = sweep["measured"]["suggested"]
    i = sweep["series"]["lr"].index(suggested)
    raw, smoothed = sweep["series"]["loss"], sweep["series"]["smoothed"]
    assert math.isfinite(raw[i]) and raw[i] <= 4 * min(smoothed[: i + 1])  # never a point where the loss blew up


def test_a_nan_in_the_first_batch_is_an_error_message_in_lr_range_not_an_exception(runs):
    code, report, checks = runs("missing")
    assert "error" not in report, report.get("error")
    assert checks["initial-loss"]["status"] == "fail" and "NaN/inf before any update" in \
        checks["initial-loss"]["message"]
    sweep = checks["lr-range"]
    assert sweep["status"] == "error" and "the sweep's first loss is nan" in sweep["message"], sweep
    assert "Traceback" not in json.dumps(sweep)
    assert checks["data-stats"]["status"] == "warn" and "1 NaN/inf value(s) in input" in \
        checks["data-stats"]["message"]
    assert code == 1


def test_a_dcgan_discriminator_at_1_7_ln2_warns_and_the_generator_step_is_not_judged_at_init(runs):
    code, report, _ = runs("dcgan")
    assert "error" not in report, report.get("error")
    by_step = {(c.get("details") or {}).get("step"): c for c in report["checks"] if c["id"] == "initial-loss"}
    disc = by_step["discriminator"]
    assert disc["status"] == "warn" and 1.5 < disc["measured"]["ratio"] < 2.0, disc  # not a fail
    assert "usual for DCGAN-style inits" in disc["message"]
    assert by_step["generator"]["status"] == "skip"
    assert code == 0
