"""Issue 10 item 3: the checks train the script's own model and optimizer and give them back byte for byte."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchsanity.probes.restore import StateSnapshot, compare, digest
from torchsanity.probes.workbench import Workbench
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
LAMBDA_SCRIPT = SCRIPTS / "lambda_mlp_names.py"


def _state_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("STATE ")]
    assert len(lines) == 1, output[-2000:]
    return lines[0]


def test_a_model_with_lambda_bound_modules_gets_gradients_everywhere_and_is_restored():
    outcome = run_probe(str(LAMBDA_SCRIPT), checks=["gradient-flow", "time-independence"], timeout=300)
    report = outcome.report
    assert "error" not in report, report.get("error")
    checks = {c["id"]: c for c in report["checks"]}
    flow = checks["gradient-flow"]
    # a deep copy would train the original's MLPs through the lambdas: "8 parameters get no gradient"
    assert flow["status"] == "pass", flow
    assert "no gradient" not in flow["message"]
    assert checks["time-independence"]["status"] == "pass", checks["time-independence"]
    restore = report["step"]["restore"]
    assert restore["identical"] is True and restore["differences"] == [], restore
    assert restore["values"] > 3 * 29  # every parameter, gradient and flag, the optimizer's state, the generators


def test_the_script_trains_on_exactly_as_without_the_probe(tmp_path):
    """The probe runs at the first optimizer step, gives everything back, and the script carries on: the weights,
    the optimizer's state and the random generators after 12 steps are byte-identical to a plain run's."""
    plain = subprocess.run([sys.executable, str(LAMBDA_SCRIPT), "--steps", "12", "--print-state"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=300, check=False)
    assert plain.returncode == 0, plain.stderr
    cfg = {"out_dir": str(tmp_path), "resume": True,
           "checks": ["gradient-flow", "overfit-batch", "lr-range", "batch-independence", "data-stats"], "steps": 20}
    probed = subprocess.run([sys.executable, "-m", "torchsanity.probes.child", str(LAMBDA_SCRIPT), "--steps", "12",
                             "--print-state"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                            env=dict(os.environ, TORCHSANITY_PROBE_CONFIG=json.dumps(cfg)), check=False)
    report = json.loads((tmp_path / "report-main-0.json").read_text())
    assert "error" not in report, report.get("error")
    assert [c["id"] for c in report["checks"]] == cfg["checks"]  # the checks did train the model in between
    assert report["step"]["restore"]["identical"] is True
    assert _state_line(probed.stdout) == _state_line(plain.stdout)


def _trained_setup():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 3))
    model[1].eval()  # a frozen BatchNorm inside a model in train mode: per-module flags must come back
    model.note = 1  # a plain attribute the forward could change
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=0.1)
    x, y = torch.randn(32, 6), torch.randint(0, 3, (32,))
    for _ in range(3):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    nn.functional.cross_entropy(model(x), y).backward()  # gradients waiting for the next step, as at the probe
    return model, opt, x, y


def test_snapshot_restores_bytes_objects_flags_optimizer_and_generators():
    model, opt, x, y = _trained_setup()
    np.random.seed(1)
    random.seed(1)
    before = digest([model], opt)
    params = [p for p in model.parameters()]
    grads = [p.grad for p in params]
    exp_avg = opt.state[params[0]]["exp_avg"]
    snap = StateSnapshot([model], opt)
    # what checks do: train, switch modes, change lr and weight decay, draw random numbers, freeze
    model.train()
    model.note = 7
    opt.param_groups[0]["lr"] = 0.5
    opt.param_groups[0]["weight_decay"] = 0.0
    params[0].requires_grad_(False)
    for _ in range(4):
        opt.zero_grad(set_to_none=True)
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    opt.load_state_dict(opt.state_dict())  # replaces the state's dicts and tensors
    np.random.rand(3)
    random.random()
    torch.rand(3)
    assert compare(before, digest([model], opt))  # the state did change
    snap.restore()
    assert compare(before, digest([model], opt)) == []
    assert [p for p in model.parameters()] == params  # the same Parameter objects
    assert all(p.grad is g for p, g in zip(params, grads))  # the same gradient tensors
    assert opt.state[params[0]]["exp_avg"] is exp_avg
    assert model[1].training is False and model[0].training is True and model.note == 1


def test_digest_sees_a_single_changed_byte():
    model, opt, _, _ = _trained_setup()
    before = digest([model], opt)
    with torch.no_grad():
        w = model[0].weight.view(-1)
        w[5] = torch.nextafter(w[5], torch.tensor(float("inf")))
    assert compare(before, digest([model], opt)) == ["0.0.weight"]


def test_workbench_resets_each_check_to_the_probed_lr_and_restores_the_scripts_warmup_lr():
    model, opt, _, _ = _trained_setup()
    for g in opt.param_groups:
        g["lr"] = 1e-6  # step 0 of a manual warmup: the probe raises it to the base lr
    wb = Workbench([model], opt)
    assert wb.lr_note and opt.param_groups[0]["lr"] == 1e-3
    opt.param_groups[0]["lr"] = 0.3
    wb.reset()
    assert opt.param_groups[0]["lr"] == 1e-3 and all(p.grad is None for p in model.parameters())
    restored = wb.restore()
    assert restored["identical"] is True, restored
    assert opt.param_groups[0]["lr"] == 1e-6 and all(p.grad is not None for p in model.parameters())


def test_asking_only_for_determinism_runs_no_check_in_the_child():
    outcome = run_probe(str(SCRIPTS / "healthy_classifier.py"), checks=["determinism"], timeout=300)
    assert [c["id"] for c in outcome.report["checks"]] == ["determinism"], outcome.report["checks"]
    assert outcome.exit_code == 0
