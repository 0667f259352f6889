"""The watch child (``python -m torchsanity.probes.watch``) on realistic scripts, real torch on CPU: what it records
(the JSON-lines format in ``probes/watch.py``) and the verdicts those records give."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from torchsanity.probes.watch_hooks import WatchRecorder
from torchsanity.probes.watch_layers import ActivationSampler, stats_record
from torchsanity.probes.watch_verdicts import Run, verdicts

SCRIPTS = Path(__file__).resolve().parent / "scripts"


def record(tmp_path: Path, script: str | Path, *args: str, timeout: float = 150, **cfg):
    """Run a script under the watch child; its records, the Run they make, and the process."""
    metrics = tmp_path / "metrics.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               TORCHSANITY_WATCH_CONFIG=json.dumps({"metrics": str(metrics), **cfg}))
    proc = subprocess.run([sys.executable, "-m", "torchsanity.probes.watch", str(SCRIPTS / script), *args],
                          env=env, capture_output=True, text=True, timeout=timeout, cwd=tmp_path)
    lines = metrics.read_text().splitlines()
    run = Run()
    run.extend(lines)
    return run, [json.loads(line) for line in lines], proc


def kinds(records: list[dict], kind: str) -> list[dict]:
    return [r for r in records if r["kind"] == kind]


def assert_live_consistent(lines: list[str]) -> None:
    """Evaluating any prefix of the file (as the live view does) gives no verdict the whole run does not give, and
    at the same step."""
    whole = Run()
    whole.extend(lines)
    final = {v["id"]: v["step"] for v in verdicts(whole)}
    for cut in range(20, len(lines), max(1, len(lines) // 12)):
        run = Run()
        run.extend(lines[:cut])
        partial = {v["id"]: v["step"] for v in verdicts(run)}
        assert all(final.get(k) == s for k, s in partial.items()), (cut, partial, final)


def test_healthy_run_records_every_series_and_ends_without_verdicts(tmp_path):
    run, records, proc = record(tmp_path, "healthy_classifier.py", "--epochs", "3", every=25)
    assert proc.returncode == 0, proc.stderr
    assert verdicts(run) == []
    steps = kinds(records, "step")
    assert [s["step"] for s in steps] == list(range(1, 181))
    # step time split into data wait and compute; samples per second from the DataLoader's batches
    assert all(s["samples"] == 64 and s["data_seconds"] >= 0 for s in steps)
    assert all(s["compute_seconds"] > 0 and s["samples_per_second"] > 0 for s in steps[1:])
    for s in steps[1:]:
        assert s["data_seconds"] + s["compute_seconds"] <= s["seconds"] + 1e-9
    assert [s["epoch"] for s in steps[::60]] == [0, 1, 2]
    # one evaluation per epoch, with the criterion the training used, on the whole validation set
    evals = kinds(records, "eval")
    assert [(e["step"], e["fn"], e["samples"], e["batches"]) for e in evals] == \
        [(60, "cross_entropy", 640, 5), (120, "cross_entropy", 640, 5), (180, "cross_entropy", 640, 5)]
    printed = [float(v) for v in re.findall(r"val (\d+\.\d+)", proc.stdout)]
    assert [round(e["loss"], 4) for e in evals] == printed  # the script's own validation loss
    # activations: the baseline at step 2, then every sampled step; the two ReLUs with histograms
    acts = kinds(records, "activations")
    assert [a["step"] for a in acts] == [2, 25, 50, 75, 100, 125, 150, 175]
    for a in acts:
        assert [(m["name"], m["type"]) for m in a["modules"]] == [("1", "ReLU"), ("3", "ReLU")]
        for m in a["modules"]:
            assert sum(m["hist"]["counts"]) == 64 * 64 and m["hist"]["lo"] == 0.0 < m["hist"]["hi"]
            assert 0.2 < m["zero"] < 0.8 and m["saturated"] is None and 0 <= m["dead"] < 0.2 and m["mean"] > 0
    assert all(s["cuda_memory"] is None for s in kinds(records, "sample"))
    assert kinds(records, "filters") == [] and kinds(records, "nonfinite") == []  # no image model, all finite
    assert records[-1] == {"kind": "end", "reason": "finished", "steps": 180, "epochs": 3, "other_optimizers": 0}
    assert_live_consistent([json.dumps(r) for r in records])


def test_epochs_budget_stops_after_n_passes_and_keeps_their_evaluation(tmp_path):
    run, records, proc = record(tmp_path, "healthy_classifier.py", "--epochs", "5", epochs=2)
    assert proc.returncode == 0, proc.stderr
    end = records[-1]
    assert end["reason"] == "epochs" and end["steps"] == 120 and end["epochs"] == 2
    assert [e["step"] for e in kinds(records, "eval")] == [60, 120]  # the evaluation after pass 2 still ran
    assert "epoch 1:" in proc.stdout and "epoch 2:" not in proc.stdout


def test_log_of_zero_in_a_module_names_that_module(tmp_path):
    run, records, proc = record(tmp_path, "nan_log.py")
    assert proc.returncode == 0, proc.stderr
    assert kinds(records, "nonfinite") == [{
        "kind": "nonfinite", "step": 50, "where": "loss", "module": "3", "module_type": "ConfidenceHead",
        "detail": "the output of module 3 (ConfidenceHead) is the first to become non-finite while its inputs and "
                  "parameters are finite"}]
    found = {v["id"]: v for v in verdicts(run)}
    assert found["non-finite"]["step"] == 50 and found["non-finite"]["module"] == "3"
    assert "module 3 (ConfidenceHead) is the first whose output became non-finite" in found["non-finite"]["message"]
    # the replay changed nothing the script sees: the same losses as the script without the watch
    plain = subprocess.run([sys.executable, str(SCRIPTS / "nan_log.py")], capture_output=True, text=True,
                           env=dict(os.environ, OMP_NUM_THREADS="1"), timeout=120)
    assert plain.stdout == proc.stdout


def test_log_of_zero_in_the_loss_expression_is_placed_after_the_model(tmp_path):
    script = tmp_path / "entropy_bonus.py"
    script.write_text(
        "import torch\nfrom torch import nn\n"
        "torch.manual_seed(0)\n"
        "x = torch.randn(512, 16)\ny = (x[:, :4].sum(1) > 0).long()\n"
        "model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 2))\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for step in range(1, 81):\n"
        "    idx = torch.randint(0, 512, (32,))\n"
        "    logits = model(x[idx])\n"
        "    weight = max(0.0, 1.0 - step / 40)\n"
        "    bonus = torch.log(weight * logits.softmax(-1).max(-1).values).mean()\n"
        "    loss = nn.functional.cross_entropy(logits, y[idx]) - 0.01 * bonus\n"
        "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n")
    run, records, proc = record(tmp_path, script)
    assert proc.returncode == 0, proc.stderr
    (found,) = kinds(records, "nonfinite")
    assert found["step"] == 40 and found["module"] is None
    assert found["detail"] == ("the model's outputs are finite: the non-finite value arises after the model, in the "
                               "loss computation")


def test_non_finite_gradient_with_a_finite_loss_names_the_parameter(tmp_path):
    script = tmp_path / "sqrt_distance.py"
    script.write_text(
        "import torch\nfrom torch import nn\n"
        "torch.manual_seed(0)\n"
        "encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))\n"
        "optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)\n"
        "for step in range(1, 31):\n"
        "    a = torch.randn(16, 8)\n"
        "    b = a.clone() if step == 20 else a + 0.1 * torch.randn(16, 8)  # a batch of identical pairs\n"
        "    distance = ((encoder(a) - encoder(b)) ** 2).sum(1).sqrt().mean()  # sqrt at 0: an inf gradient\n"
        "    optimizer.zero_grad()\n    distance.backward()\n    optimizer.step()\n")
    run, records, proc = record(tmp_path, script)
    assert proc.returncode == 0, proc.stderr
    (found,) = kinds(records, "nonfinite")
    assert found["step"] == 20 and found["where"] == "grad" and found["module"] == "2.bias"
    assert found["detail"].startswith("the loss is finite but the gradient of 2.bias is not")
    non_finite = next(v for v in verdicts(run) if v["id"] == "non-finite")
    assert non_finite["step"] == 20 and "gradient of 2.bias" in non_finite["message"]


def test_tiny_training_set_with_validation_every_epoch_overfits(tmp_path):
    run, records, proc = record(tmp_path, "overfit_tiny.py")
    assert proc.returncode == 0, proc.stderr
    evals = kinds(records, "eval")
    assert len(evals) == 60 and all(e["fn"] == "cross_entropy" and e["samples"] == 512 for e in evals)
    printed = dict(re.findall(r"epoch (\d+): train \S+ val (\d+\.\d+)", proc.stdout))
    assert round(evals[10]["loss"], 4) == float(printed["10"])  # sum-reduced validation losses, per sample
    found = {v["id"]: v for v in verdicts(run)}
    assert set(found) == {"overfitting"}, found
    over = found["overfitting"]
    best = min(evals, key=lambda e: e["loss"])
    assert best["step"] < over["step"] <= best["step"] + 30  # soon after the validation loss turned
    assert over["evidence"]["steps"][-1] == over["step"] and "training loss fell" in over["message"]
    assert_live_consistent([json.dumps(r) for r in records])


def test_dataset_that_sleeps_is_input_bound_and_first_conv_filters_are_kept(tmp_path):
    run, records, proc = record(tmp_path, "slow_dataset.py")
    assert proc.returncode == 0, proc.stderr
    found = {v["id"]: v for v in verdicts(run)}
    assert set(found) == {"input-bound"}, found
    assert found["input-bound"]["step"] <= 40 and "waiting for the DataLoader" in found["input-bound"]["message"]
    steps = kinds(records, "step")[5:]
    assert sorted(s["data_seconds"] / s["seconds"] for s in steps)[len(steps) // 2] > 0.5
    assert all(s["data_seconds"] >= 16 * 0.002 for s in steps)  # 16 items of 2 ms each
    filters = kinds(records, "filters")
    assert [(f["step"], f["layer"], f["shape"]) for f in filters] == [(0, "0.weight", [8, 3, 3, 3]),
                                                                       (80, "0.weight", [8, 3, 3, 3])]
    start, end = (torch.tensor(f["values"]) for f in filters)
    assert start.shape == (8, 3, 3, 3) and not torch.allclose(start, end)


def test_dying_relus_are_dead_units_growing(tmp_path):
    run, records, proc = record(tmp_path, "dead_relu.py")
    assert proc.returncode == 0, proc.stderr
    found = {v["id"]: v for v in verdicts(run)}
    dead = found["dead-units"]
    assert dead["layer"] == "3" and dead["step"] == 75 and dead["criterion"].startswith("DeepDiagnosis")
    first = kinds(records, "activations")[0]
    assert first["step"] == 2 and first["modules"][1]["dead"] < 0.1  # the baseline: all alive
    assert "non-finite" not in found and "divergence" not in found


def test_scheduler_stepped_per_batch_ends_long_before_the_run(tmp_path):
    run, records, proc = record(tmp_path, "lr_per_batch.py")
    assert proc.returncode == 0, proc.stderr
    found = {v["id"]: v for v in verdicts(run)}
    ends = found["lr-schedule-ends-early"]
    assert 100 <= ends["step"] <= 120 and "stepped once per epoch, not once per batch" in ends["advice"]
    assert "lr-schedule-never-changes" not in found


def test_cuda_device_without_a_gpu_is_a_clear_error(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    run, records, proc = record(tmp_path, "healthy_classifier.py", device="cuda")
    assert proc.returncode == 2
    assert records[-1]["reason"] == "error" and records[-1]["error"]["type"] == "NoCuda"
    assert kinds(records, "step") == []


def _gloo() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_gloo_available()


@pytest.mark.skipif(not _gloo(), reason="torch.distributed with gloo is not available")
@pytest.mark.parametrize("fixed", [False, True], ids=["rank-1-skips-the-average", "fixed"])
def test_two_ranks_on_gloo_that_drift_apart_are_desynchronised(tmp_path, fixed):
    metrics = tmp_path / "metrics.jsonl"
    env = dict(os.environ, OMP_NUM_THREADS="1",
               TORCHSANITY_WATCH_CONFIG=json.dumps({"metrics": str(metrics), "every": 10}))
    args = ["--steps", "40"] + (["--fixed"] if fixed else [])
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "-m", "torchsanity.probes.watch", str(SCRIPTS / "ddp_skip_allreduce.py"), *args],
                          env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = Run()
    run.extend(metrics.read_text().splitlines())
    assert run.start["rank"] == 0 and run.start["world_size"] == 2 and len(run.steps) == 40
    assert sorted(run.checksums) == [1, 10, 20, 30, 40] and all(set(c) == {0, 1} for c in run.checksums.values())
    rank1 = [json.loads(line) for line in (tmp_path / "metrics.jsonl.rank1").read_text().splitlines()]
    assert rank1[0]["rank"] == 1 and rank1[-1]["kind"] == "end" and rank1[-1]["steps"] == 40
    found = {v["id"]: v for v in verdicts(run)}
    if fixed:
        assert found == {}
        assert all(c[0]["values"] == c[1]["values"] for c in run.checksums.values())
    else:
        assert set(found) == {"ranks-desynchronised"}, found
        desync = found["ranks-desynchronised"]
        assert desync["step"] == 10 and desync["rank"] == 1 and "DistributedDataParallel" in desync["advice"]


def test_a_torchscript_loss_module_still_compiles_under_the_watch(tmp_path):
    script = tmp_path / "scripted_loss.py"
    script.write_text(
        "import torch\nfrom torch.nn import functional as F\n"
        "class SmoothedCE(torch.nn.Module):\n"
        "    def forward(self, logits, target):\n"
        "        return F.cross_entropy(logits, target, label_smoothing=0.1)\n"
        "criterion = torch.jit.script(SmoothedCE())  # compiles F.cross_entropy, which the watch wraps\n"
        "model = torch.nn.Linear(4, 3)\n"
        "optimizer = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for _ in range(5):\n"
        "    loss = criterion(model(torch.randn(8, 4)), torch.randint(0, 3, (8,)))\n"
        "    optimizer.zero_grad()\n    loss.backward()\n    optimizer.step()\n")
    run, records, proc = record(tmp_path, script)
    assert proc.returncode == 0, proc.stderr
    assert records[-1]["reason"] == "finished" and len(run.steps) == 5


def test_a_small_batch_loss_that_swings_widely_is_not_a_divergence(tmp_path):
    run, records, proc = record(tmp_path, "noisy_regression.py")
    assert proc.returncode == 0, proc.stderr
    losses = [x for x in run.loss if x is not None]
    assert max(losses) > 20 * min(losses[:50]) and max(losses[200:]) > 4 * losses[0]  # spikes a 5-step rule took
    found = {v["id"] for v in verdicts(run)}
    assert "divergence" not in found and "non-finite" not in found, found


def test_step_loss_and_global_gradient_norm_are_those_the_script_saw(tmp_path):
    """In process: the loss and global gradient norm recorded for each step (taken as numbers at the step on a
    CPU) are the ones the training loop itself computes, sampled steps or not."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    x, y = torch.randn(32, 4), torch.randn(32, 1)
    path = tmp_path / "metrics.jsonl"
    expected = []
    with open(path, "w", encoding="utf-8") as out:
        recorder = WatchRecorder(out, every=3)
        recorder.install()
        try:
            for _ in range(7):
                optimizer.zero_grad()
                loss = nn.functional.mse_loss(model(x), y)
                loss.backward()
                norm = torch.linalg.vector_norm(torch.stack([p.grad.double().norm() for p in model.parameters()]))
                expected.append((loss.item(), norm.item()))
                optimizer.step()
        finally:
            recorder.uninstall()
        recorder.finish()
    steps = kinds([json.loads(line) for line in path.read_text().splitlines()], "step")
    assert [s["step"] for s in steps] == list(range(1, 8))
    assert [s["loss"] for s in steps] == [pytest.approx(loss, rel=1e-6) for loss, _ in expected]
    # on a fast machine the global norm of a tiny model is taken on a stride (null in between), always at the
    # sampled steps (1 and every K-th)
    assert all(steps[i]["grad_norm"] is not None for i in (0, 2, 5))
    for step, (_, norm) in zip(steps, expected):
        assert step["grad_norm"] is None or step["grad_norm"] == pytest.approx(norm, rel=1e-6), step


def test_activation_statistics_agree_with_torch_and_leave_non_finite_values_out_of_the_histogram():
    relu = nn.ReLU()
    sampler = ActivationSampler()
    x = torch.randn(64, 200)  # 12800 values: all of them read
    sampler.arm([("act", relu)])
    y = relu(x)
    module = stats_record(4, sampler.disarm())["modules"][0]
    assert module["mean"] == pytest.approx(y.mean().item(), rel=1e-5)
    assert module["std"] == pytest.approx(y.std().item(), rel=1e-5)
    assert module["zero"] == pytest.approx((y == 0).float().mean().item())
    assert module["dead"] == pytest.approx((y.amax(dim=0) <= 0).float().mean().item())
    assert module["hist"]["lo"] == 0.0 and module["hist"]["hi"] == pytest.approx(y.max().item())
    assert sum(module["hist"]["counts"]) == y.numel()

    x[0, :3] = torch.tensor([float("nan"), float("inf"), 1e6])
    sampler.arm([("act", relu)])
    y = relu(x)
    module = stats_record(5, sampler.disarm())["modules"][0]
    assert module["mean"] == "nan" and module["std"] == "nan"
    assert sum(module["hist"]["counts"]) == y.numel() - 2  # the NaN and the inf are not counted
    assert module["hist"]["hi"] == 1e6 and module["hist"]["lo"] == 0.0
