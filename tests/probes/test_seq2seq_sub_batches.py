"""A sequence-first encoder-decoder in the layout of the classic translation tutorials (bentrevett/pytorch-seq2seq's
pattern): the loss takes trg[1:].view(-1), which needs a contiguous target. Cutting the batch along dimension 1 used
to hand the script a non-contiguous slice, so the step "did not replay" on a sub-batch and every overfitting check
fell back to the whole batch. And a one-batch learning-rate sweep with Adam descends fastest at rates no one trains
with: when overfit-batch memorised the batch at the configured rate, lr-range does not call it too low. Real CLI
runner, real torch on CPU, on tests/probes/scripts/seq2seq_teacher_forcing.py (a script of our own)."""

from __future__ import annotations

from pathlib import Path

import pytest
from torchsanity.server.probe_runner import run_probe

SCRIPT = str(Path(__file__).resolve().parent / "scripts" / "seq2seq_teacher_forcing.py")


@pytest.fixture(scope="module")
def outcome():
    return run_probe(SCRIPT, checks=["overfit-batch", "generalization", "lr-range"], timeout=400)


def _check(outcome, cid):
    return next(c for c in outcome.report["checks"] if c["id"] == cid)


def test_a_sequence_first_batch_is_cut_into_contiguous_sub_batches(outcome):
    report = outcome.report
    assert "error" not in report, report.get("error")
    assert report["batch"]["dim"] == 1 and report["batch"]["sub_batch"] == 8
    overfit = _check(outcome, "overfit-batch")
    assert overfit["status"] == "pass" and overfit["measured"]["samples"] == 8, overfit
    generalization = _check(outcome, "generalization")
    assert generalization["status"] == "pass" and generalization["measured"]["held_out_samples"] == 8, generalization


def test_lr_range_does_not_call_a_rate_that_memorises_the_batch_too_low(outcome):
    sweep = _check(outcome, "lr-range")
    measured = sweep["measured"]
    assert measured["configured"] < measured["suggested"] / 300  # the sweep alone would say "too low" ...
    assert sweep["status"] == "pass", sweep  # ... but overfit-batch memorised the batch at the configured rate
    assert "overfit-batch memorised the batch in" in sweep["message"]
    assert outcome.exit_code == 0
