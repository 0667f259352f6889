"""Models that mix samples on purpose (issue 10, item 2): graph message passing, batch-statistics BatchNorm,
similarity outputs and --allow-mixing make batch-independence a skip with the reason — never a FAIL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch
from test_checks_unit import blobs, run_check
from torch import nn
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[2]


def test_graph_networks_skip_batch_independence_with_the_reason():
    dense = run_probe(str(SCRIPTS / "gcn_node_classification.py"), checks=["batch-independence", "overfit-batch"],
                      timeout=180)
    checks = {c["id"]: c for c in dense.report["checks"]}
    assert checks["batch-independence"]["status"] == "skip", checks
    assert "a 60 × 60 matrix over the samples (a graph's adjacency)" in checks["batch-independence"]["message"]
    assert checks["overfit-batch"]["status"] == "pass" and dense.exit_code == 0
    edges = run_probe(str(SCRIPTS / "gcn_node_classification.py"), ["--edge-index"], checks=["batch-independence"],
                      timeout=180)
    check = edges.report["checks"][0]
    assert check["status"] == "skip" and "edge_index ((2, " in check["message"], check


def test_allow_mixing_skips_a_model_that_would_fail():
    base = [sys.executable, "-m", "torchsanity.server", "probe", "--checks", "batch-independence",
            str(SCRIPTS / "batch_mixing.py")]
    failing = subprocess.run(base, cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert failing.returncode == 1 and "FAIL   batch-independence" in failing.stdout
    allowed = subprocess.run(base + ["--allow-mixing"], cwd=REPO, capture_output=True, text=True, timeout=180, check=False)
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr
    assert "SKIP   batch-independence  --allow-mixing: the model mixes samples on purpose" in allowed.stdout


def test_batch_statistics_batchnorm_and_similarity_outputs_are_skipped():
    x, y = blobs()
    batch_stats = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16, track_running_stats=False), nn.ReLU(),
                                nn.Linear(16, 4))
    res = run_check("batch-independence", batch_stats, (x, y), nn.CrossEntropyLoss())
    assert res.status == "skip" and "track_running_stats=False" in res.message, res.message
    tracked = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 4))
    res = run_check("batch-independence", tracked, (x, y), nn.CrossEntropyLoss())
    assert res.status == "pass", res.message  # eval mode uses the running statistics: no mixing

    class Contrastive(nn.Module):  # returns the batch's similarity logits, as CLIP's logits_per_image does
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(8, 16)

        def forward(self, a):
            z = nn.functional.normalize(self.proj(a), dim=1)
            return z @ z.t() / 0.1

    torch.manual_seed(0)
    res = run_check("batch-independence", Contrastive(), (x, torch.arange(64)), nn.CrossEntropyLoss())
    assert res.status == "skip" and "8 × 8 matrix over the samples" in res.message, res.message


def test_a_classifier_with_as_many_classes_as_the_sub_batch_is_judged_not_skipped():
    """Eight classes and a sub-batch of eight: the 8 × 8 output is eight scores a sample, not a matrix over the
    samples (on the whole batch it is 64 × 8); it passes when samples stay apart and fails when they mix."""
    x, y = blobs(classes=8)
    torch.manual_seed(0)
    classifier = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))
    res = run_check("batch-independence", classifier, (x, y), nn.CrossEntropyLoss())
    assert res.status == "pass", res.message

    class Centred(nn.Module):  # subtracts the batch mean of the logits: every sample's scores depend on the others
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 8))

        def forward(self, a):
            h = self.net(a)
            return h - h.mean(0)

    torch.manual_seed(0)
    res = run_check("batch-independence", Centred(), (x, y), nn.CrossEntropyLoss())
    assert res.status == "fail" and "depends on 7 other sample(s)" in res.message, res.message
