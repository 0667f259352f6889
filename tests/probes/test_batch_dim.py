"""Which dimension is the batch (issue 10, item 1): sequence-first RNN scripts pass batch-independence and count
samples, not time steps; hidden states are not inputs; a list of differently sized images is a list of samples;
--batch-dim overrides. Real scripts, real torch, CPU."""

from __future__ import annotations

import json
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[2]
RUNS = {
    "lm": ("rnn_language_model", {"checks": ["batch-independence", "initial-loss"]}),
    "lm_step2": ("rnn_language_model", {"checks": ["batch-independence", "data-stats"], "step": 2}),
    "gru": ("seq_first_gru_classifier", {"checks": ["batch-independence", "overfit-batch"]}),
    "list": ("variable_size_images", {"checks": ["batch-independence", "overfit-batch", "generalization"]}),
    "list_mixed": ("variable_size_images", {"checks": ["batch-independence"], "script_args": ["--mix"]}),
}


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=3)
    futures = {key: pool.submit(run_probe, str(SCRIPTS / f"{name}.py"), timeout=180, **kw)
               for key, (name, kw) in RUNS.items()}
    yield lambda key: futures[key].result(timeout=600)
    pool.shutdown(wait=True, cancel_futures=True)


def _check(report, cid):
    return next(c for c in report["checks"] if c["id"] == cid)


def test_sequence_first_lstm_language_model_passes_batch_independence(runs):
    report = runs("lm").report
    assert "error" not in report, report.get("error")
    assert report["batch"]["dim"] == 1 and report["batch"]["dim_from"] == "LSTM(batch_first=False)"
    assert report["batch"]["size"] == 10  # --batch-size, not the 12 time steps of --bptt
    check = _check(report, "batch-independence")
    assert check["status"] == "pass", check
    assert f"({report['batch']['sub_batch']} samples probed" in check["message"]
    assert len(check["series"]["grad_per_sample"]) == report["batch"]["sub_batch"]
    assert _check(report, "initial-loss")["status"] == "pass"
    assert "the batch is dimension 1 of the inputs (from LSTM(batch_first=False))" in report["notes"]


def test_a_carried_hidden_state_is_not_an_input(runs):
    report = runs("lm_step2").report  # step 2: the hidden state is a detached tensor handed to the model
    assert "error" not in report, report.get("error")
    assert report["step"]["index"] == 2
    assert _check(report, "batch-independence")["status"] == "pass"
    stats = _check(report, "data-stats")
    assert stats["status"] == "pass" and "not judged as imbalance" in stats["message"], stats  # character counts
    measured = stats["measured"]
    assert measured["input"]["dtype"] == "torch.int64" and measured["input"]["shape"] == [12, 10]
    assert not any(key.startswith("input1") or key == "input0" for key in measured)  # (h, c) are not data


def test_dataloader_batch_size_finds_the_batch_in_a_time_first_gru(runs):
    report = runs("gru").report
    assert "error" not in report, report.get("error")
    assert report["batch"]["dim"] == 1 and report["batch"]["dim_from"] == "the DataLoader's batch size 16"
    assert report["batch"]["size"] == 16 and report["batch"]["sub_batch"] == 8
    assert _check(report, "batch-independence")["status"] == "pass"
    overfit = _check(report, "overfit-batch")
    assert overfit["status"] == "pass" and "8 samples" in overfit["message"], overfit


def test_batch_dim_option_overrides_the_guess():
    proc = subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", "--format", "json", "--checks",
                           "initial-loss", "--batch-dim", "0", str(SCRIPTS / "rnn_language_model.py")], cwd=REPO,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    batch = json.loads(proc.stdout)["batch"]
    assert batch["dim"] == 0 and batch["dim_from"] == "--batch-dim" and batch["size"] == 12
    bad = subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", "--checks", "initial-loss",
                          "--batch-dim", "5", str(SCRIPTS / "rnn_language_model.py")], cwd=REPO,
                         capture_output=True, text=True, timeout=180, check=False)
    assert bad.returncode == 2 and "--batch-dim 5, but the model's first input has shape (12, 10)" in bad.stdout


def test_batch_dim_applies_on_the_entry_path():
    outcome = run_probe("", entry="entry_time_first:build", cwd=str(SCRIPTS), batch_dim=1, timeout=180,
                        checks=["batch-independence", "overfit-batch"])
    report = outcome.report
    assert "error" not in report, report.get("error")
    assert report["batch"]["dim"] == 1 and report["batch"]["dim_from"] == "--batch-dim"
    assert report["batch"]["size"] == 16 and report["batch"]["sub_batch"] == 8  # samples, not the 12 time steps
    bi = _check(report, "batch-independence")
    assert bi["status"] == "pass" and "(8 samples probed" in bi["message"], bi
    assert len(bi["series"]["grad_per_sample"]) == 8
    overfit = _check(report, "overfit-batch")
    assert overfit["status"] == "pass" and "8 samples" in overfit["message"], overfit
    bad = run_probe("", entry="entry_time_first:build", cwd=str(SCRIPTS), batch_dim=3, timeout=180,
                    checks=["initial-loss"]).report["error"]
    assert "--batch-dim 3, but the entry point's first input has shape (12, 16, 6)" in bad["message"]


def test_a_list_of_images_of_different_sizes_is_a_list_of_samples(runs):
    """Found on lucidrains/vit-pytorch's NaViT (a list of 5 images): the probe counted the 3 channels of the first
    image as the batch. The list is the batch: sub-batches take images from it, and each image is one sample."""
    report = runs("list").report
    assert "error" not in report, report.get("error")
    assert report["batch"]["size"] == 16 and report["batch"]["dim_from"] == "a list of 16 samples, one tensor each"
    assert report["batch"]["sub_batch"] == 8
    assert any(note.startswith("the batch is a list of 16 samples") for note in report["notes"]), report["notes"]
    independence = _check(report, "batch-independence")
    assert independence["status"] == "pass", independence
    assert "8 samples probed, a list of 16 samples" in independence["message"]
    assert len(independence["series"]["grad_per_sample"]) == 8
    overfit = _check(report, "overfit-batch")
    assert overfit["status"] == "pass" and overfit["measured"]["samples"] == 8, overfit
    generalization = _check(report, "generalization")
    assert generalization["status"] == "pass" and generalization["measured"]["held_out_samples"] == 8, generalization


def test_a_model_that_mixes_the_samples_of_a_list_batch_fails_batch_independence(runs):
    report = runs("list_mixed").report
    assert "error" not in report, report.get("error")
    check = _check(report, "batch-independence")
    assert check["status"] == "fail" and "depends on 7 other sample(s)" in check["message"], check
