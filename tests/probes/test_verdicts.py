"""Each situation of the issue gives its verdict: real scripts, real torch on CPU, run through run_probe."""

from __future__ import annotations

import math



def statuses(outcome) -> dict[str, str]:
    return {c["id"]: c["status"] for c in outcome.report["checks"]}


def _get(outcomes, name):
    outcome = outcomes[name].result(timeout=600)
    assert "error" not in outcome.report, outcome.report.get("error")
    return outcome


def _check(outcome, cid):
    return next(c for c in outcome.report["checks"] if c["id"] == cid)


def test_healthy_classifier_passes_every_check(outcomes):
    outcome = _get(outcomes, "healthy_classifier")
    assert statuses(outcome) == {
        "initial-loss": "pass", "overfit-batch": "pass", "generalization": "pass", "input-independence": "pass",
        "batch-independence": "pass", "time-independence": "skip", "gradient-flow": "pass", "determinism": "pass",
        "lr-range": "pass", "data-stats": "pass",
    }, [(c["id"], c["message"]) for c in outcome.report["checks"]]
    assert outcome.exit_code == 0
    report = outcome.report
    assert report["device"] == "cpu"
    assert report["loss"] == {"kind": "cross-entropy", "value": report["loss"]["value"], "classes": 10}
    assert report["batch"]["source"] == "dataloader"
    # source lines point into the script: the loss line and the line that built the model
    src = open(report["script"]).read().splitlines()
    assert "criterion(model(xb), yb)" in src[_check(outcome, "initial-loss")["line"] - 1]
    assert "nn.Sequential" in src[_check(outcome, "gradient-flow")["line"] - 1]
    curve = _check(outcome, "overfit-batch")["series"]["loss"]
    assert len(curve) >= 10 and curve[-1] < 0.3 * curve[0]


def test_final_layer_60x_too_large_fails_initial_loss(outcomes):
    outcome = _get(outcomes, "big_final_layer")
    check = _check(outcome, "initial-loss")
    assert check["status"] == "fail", check
    assert check["measured"]["loss"] > 1.5 * math.log(10)
    assert math.isclose(check["expected"], math.log(10))
    assert outcome.exit_code == 1


def test_softmax_into_cross_entropy_fails_overfit_with_its_floor(outcomes):
    outcome = _get(outcomes, "softmax_into_ce")
    check = _check(outcome, "overfit-batch")
    assert check["status"] == "fail", check
    assert math.isclose(check["measured"]["floor"], math.log(math.e + 9) - 1, rel_tol=1e-6)
    assert abs(check["measured"]["floor"] - 1.46) < 0.01
    assert check["measured"]["best"] > 1.4
    assert _check(outcome, "initial-loss")["status"] == "pass"


def test_view_t_batch_mixing_fails_batch_independence(outcomes):
    outcome = _get(outcomes, "batch_mixing")
    check = _check(outcome, "batch-independence")
    assert check["status"] == "fail", check
    assert check["measured"]["max_grad_other_samples"] > 0


def test_model_ignoring_input_fails_input_independence(outcomes):
    outcome = _get(outcomes, "ignores_input")
    check = _check(outcome, "input-independence")
    assert check["status"] == "fail", check
    assert check["measured"]["input_grad_norm"] == 0.0


def test_learning_rate_25_fails_overfit(outcomes):
    outcome = _get(outcomes, "lr25")
    check = _check(outcome, "overfit-batch")
    assert check["status"] == "fail", check
    final = check["measured"]["final"]
    assert final is None or not isinstance(final, float) or final > check["measured"]["start"]
    assert _check(outcome, "lr-range")["status"] == "warn"
    assert _check(outcome, "gradient-flow")["status"] in ("warn", "fail")


def test_unseeded_script_fails_determinism(outcomes):
    outcome = _get(outcomes, "unseeded")
    check = _check(outcome, "determinism")
    assert check["status"] == "fail", check
    assert "seed" in check["message"]
    assert check["measured"]["weights_rel_diff"] > 0


def test_regression_centred_at_50_warns_initial_loss(outcomes):
    outcome = _get(outcomes, "regression_mean50")
    check = _check(outcome, "initial-loss")
    assert check["status"] == "warn", check
    assert "bias" in check["message"]
    assert abs(check["measured"]["target_mean"] - 50) < 3
    assert outcome.exit_code == 0
    # the script wraps its step in `except Exception`: the probe's stop must not be swallowed
    assert "finished all steps" not in outcome.output
    assert "step failed" not in outcome.output


def test_nanogpt_style_hand_sliced_batches_pass(outcomes):
    outcome = _get(outcomes, "nanogpt_style")
    assert set(statuses(outcome).values()) == {"pass"}, [(c["id"], c["message"]) for c in outcome.report["checks"]]
    assert outcome.report["batch"]["source"] == "replay"
    assert outcome.report["loss"]["kind"] == "cross-entropy"
    # the loss is computed inside the model: its line is the F.cross_entropy line in GPT.forward
    src = open(outcome.report["script"]).read().splitlines()
    assert "F.cross_entropy" in src[_check(outcome, "initial-loss")["line"] - 1]


def test_compiled_model_under_autocast_and_grad_scaler(outcomes):
    outcome = _get(outcomes, "amp_compiled")
    assert set(statuses(outcome).values()) == {"pass"}, [(c["id"], c["message"]) for c in outcome.report["checks"]]
    # the model's line is where the plain module was built, not the torch.compile wrapper
    src = open(outcome.report["script"]).read().splitlines()
    assert "nn.Sequential" in src[next(c for c in outcome.report["checks"] if c["id"] == "gradient-flow")["line"] - 1]
