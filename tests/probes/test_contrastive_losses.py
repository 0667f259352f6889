"""A contrastive loss written in the training loop (found on leftthomas/SimCLR's pattern: two encoder calls, the
NT-Xent loss over the 2B x 2B similarity matrix with torch.eye(2 * batch_size) from the configured batch size).
Its minimum is far above 0, so a fit that levels off there is no "slow fit" warning; and the step cannot be cut to
a sub-batch, which generalization must explain as such (not "a batch larger than 32 leaves some out"). The model
itself is per-sample: batch-independence passes. Real CLI runner, real torch on CPU, on
tests/probes/scripts/contrastive_two_views.py (a script of our own)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torchsanity.server.probe_runner import run_probe

SCRIPT = str(Path(__file__).resolve().parent / "scripts" / "contrastive_two_views.py")


@pytest.fixture(scope="module")
def checks():
    outcome = run_probe(SCRIPT, checks=["overfit-batch", "generalization", "batch-independence"], timeout=300)
    assert "error" not in outcome.report, outcome.report.get("error")
    assert outcome.exit_code == 0
    return {c["id"]: c for c in outcome.report["checks"]}


def test_a_hand_written_loss_that_levels_off_is_not_called_a_slow_fit(checks):
    overfit = checks["overfit-batch"]
    assert overfit["status"] == "skip", overfit
    assert "its minimum is unknown" in overfit["message"] and "see the curve" in overfit["message"]
    measured = overfit["measured"]
    assert measured["best"] < 0.9 * measured["start"]  # it did learn ...
    assert measured["best"] > 0.3 * measured["start"]  # ... down to the loss's own floor, far above 0


def test_generalization_says_why_the_whole_batch_was_fitted(checks):
    gen = checks["generalization"]
    assert gen["status"] == "skip", gen
    assert "does not replay on its first 8 samples" in gen["message"], gen["message"]
    assert "leaves some out" not in gen["message"]


def test_the_per_sample_encoder_passes_batch_independence(checks):
    assert checks["batch-independence"]["status"] == "pass", checks["batch-independence"]
