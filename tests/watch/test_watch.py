"""`torchsanity watch` end to end: the real CLI in a subprocess on realistic scripts, real torch on CPU."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from torchsanity.probes.watch_verdicts import Run, verdicts
from watch_helpers import processes_with

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[2]
TOKEN_ENV = "TS_WATCH_TEST_TOKEN"
WORKDIR: Path = REPO  # each test runs the CLI in its own temporary folder (the default report lands there)


@pytest.fixture(autouse=True)
def _workdir(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "WORKDIR", tmp_path)


def _env(token: str = "") -> dict:
    # one thread per run: the tests share a small machine
    return dict(os.environ, OMP_NUM_THREADS="1", **({TOKEN_ENV: token} if token else {}))


def _cli(*args, timeout=150):
    return subprocess.run([sys.executable, "-m", "torchsanity.server", "watch", *args], cwd=WORKDIR, env=_env(),
                          capture_output=True, text=True, timeout=timeout)


def _json(proc) -> dict:
    assert proc.stdout.strip(), proc.stderr
    return json.loads(proc.stdout)


def test_healthy_classifier_ends_without_verdicts_and_records_curves(tmp_path):
    metrics, page = tmp_path / "m.jsonl", tmp_path / "r.html"
    proc = _cli("--format", "json", "--metrics", str(metrics), "--output", str(page),
                str(SCRIPTS / "healthy_classifier.py"), "--", "--epochs", "3")
    assert proc.returncode == 0, proc.stderr
    report = _json(proc)
    assert report["verdicts"] == [] and "error" not in report
    assert report["stopped"] == "finished" and report["steps"] == 180
    series = report["series"]
    assert series["step"] == list(range(1, 181))
    assert all(isinstance(x, float) for x in series["loss"])
    # the global gradient norm: at every sampled step, elsewhere on a stride that keeps its cost down
    norms = dict(zip(series["step"], series["grad_norm"]))
    assert all(isinstance(norms[s], float) and norms[s] > 0 for s in (1, 25, 50, 75, 100, 125, 150, 175))
    assert all(x is None or isinstance(x, float) for x in norms.values())
    assert series["loss"][0] > 2.0 and report["summary"]["last_loss"] < 0.2 * series["loss"][0]
    assert {lr[0] for lr in series["lr"]} == {1e-3, 5e-4}  # StepLR halves it after two epochs
    assert report["layers"] == ["0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"]
    assert [s["step"] for s in report["samples"]] == [1, 25, 50, 75, 100, 125, 150, 175]
    assert all(1e-5 < s["update_ratio"][0] < 1e-1 for s in report["samples"])
    assert "epoch 2: loss" in proc.stderr  # the script's own output, on stderr
    lines = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert lines[0]["kind"] == "start" and lines[-1] == {"kind": "end", "reason": "finished", "steps": 180,
                                                         "epochs": 3, "other_optimizers": 0}
    assert sum(rec["kind"] == "step" for rec in lines) == 180
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "Chart.js v4" in html and "No verdicts" in html
    assert not re.search(r"<(script|link|img)[^>]+(src|href)=", html)  # nothing fetched at view time
    embedded = re.search(r'<script type="application/json" id="watch-data">(.*?)</script>', html, re.DOTALL).group(1)
    assert json.loads(embedded)["series"]["loss"] == series["loss"]


def test_learning_rate_jump_makes_divergence_verdict_near_that_step(tmp_path):
    metrics = tmp_path / "m.jsonl"
    proc = _cli("--format", "json", "--metrics", str(metrics), str(SCRIPTS / "diverging_lr.py"))
    assert proc.returncode == 1, proc.stderr
    report = _json(proc)
    found = {v["id"]: v for v in report["verdicts"]}
    assert "divergence" in found, report["verdicts"]
    div = found["divergence"]
    assert 120 <= div["step"] <= 132  # the learning rate jumps 400-fold at step 120
    assert "changed from 0.05 to 20 at step 120" in div["message"]
    assert div["evidence"]["steps"] and div["advice"].startswith("lower the learning rate")
    assert "healthy" not in {v["id"] for v in report["verdicts"]}
    assert f"step {div['step']}: divergence:" in proc.stderr  # announced while it ran
    # live evaluation over any prefix of the run gives the verdicts the end gives, at the same steps
    lines = metrics.read_text().splitlines()
    final = {v["id"]: v["step"] for v in report["verdicts"]}
    for cut in range(50, len(lines), 37):
        run = Run()
        run.extend(lines[:cut])
        partial = {v["id"]: v["step"] for v in verdicts(run)}
        assert all(final.get(k) == s for k, s in partial.items()), (cut, partial, final)


def test_log_of_zero_at_step_50_is_a_non_finite_verdict_at_step_50():
    proc = _cli("--format", "json", str(SCRIPTS / "nan_log.py"))
    assert proc.returncode == 1, proc.stderr
    report = _json(proc)
    first = next(v for v in report["verdicts"] if v["id"] == "non-finite")
    assert first["step"] == 50 and first["module"] == "3"
    assert "the loss became inf at step 50 (last finite loss" in first["message"]
    assert "module 3 (ConfidenceHead) is the first whose output became non-finite" in first["message"]
    assert "clamp" in first["advice"]
    assert report["series"]["loss"][49] == "inf" and isinstance(report["series"]["loss"][48], float)


def test_sigmoid_network_gradients_vanish_and_steps_budget_stops_it():
    proc = _cli("--steps", "150", str(SCRIPTS / "vanishing_sigmoid.py"), "--format", "json")
    assert proc.returncode == 1, proc.stderr
    report = _json(proc)
    assert report["stopped"] == "steps" and report["steps"] == 150
    found = {v["id"]: v for v in report["verdicts"]}
    assert "vanishing-gradients" in found, report["verdicts"]
    vanish = found["vanishing-gradients"]
    assert vanish["layer"] == "0.weight" and vanish["criterion"].startswith("AUTOTRAINER")
    assert vanish["step"] == 50  # three sampled steps in a row: 1, 25, 50
    assert "update-ratio-low" in found and "update-ratio-high" not in found


def test_ctrl_c_mid_run_keeps_the_report_and_leaves_no_process(tmp_path):
    metrics, page = tmp_path / "m.jsonl", tmp_path / "r.html"
    token = uuid.uuid4().hex
    cli = subprocess.Popen([sys.executable, "-m", "torchsanity.server", "watch", "--format", "json", "--metrics",
                            str(metrics), "--output", str(page), "--every", "10",
                            str(SCRIPTS / "healthy_classifier.py"), "--", "--epochs", "1000"],
                           cwd=WORKDIR, env=_env(token), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if metrics.exists() and metrics.read_text().count('"kind": "sample"') >= 4:
                break
            time.sleep(0.1)
        else:
            raise AssertionError("the run did not get going")
        cli.send_signal(signal.SIGINT)
        out, err = cli.communicate(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
    assert cli.returncode == 0, err
    report = json.loads(out)
    assert report["stopped"] == "SIGINT" and report["steps"] >= 30 and report["verdicts"] == []
    assert "stopped by SIGINT after" in err and "report is kept" in err
    assert page.read_text().startswith("<!DOCTYPE html>")
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert records[-1]["kind"] == "end" and records[-1]["reason"] == "SIGTERM"  # the recorder flushed and closed
    assert records[-1]["steps"] == report["steps"]
    time.sleep(0.5)
    assert processes_with(TOKEN_ENV, token) == []


def test_bad_input_is_a_clear_error(tmp_path):
    missing = _cli(str(tmp_path / "nope.py"))
    assert missing.returncode == 2 and "no such script" in missing.stdout
    bad = _cli("--every", "0", str(SCRIPTS / "nan_log.py"))
    assert bad.returncode == 2 and "--every must be at least 1" in bad.stderr
    nothing = tmp_path / "no_training.py"
    nothing.write_text("import torch\nprint(torch.ones(2).sum())\n")
    proc = _cli(str(nothing))
    assert proc.returncode == 2 and "without an optimizer step" in proc.stdout


def _start(token: str, *args) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "torchsanity.server", "watch", *args], cwd=WORKDIR, env=_env(token),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_timeout_stops_the_tree_and_keeps_the_report():
    token = uuid.uuid4().hex
    cli = _start(token, "--timeout", "30", "--format", "json", str(SCRIPTS / "healthy_classifier.py"), "--",
                 "--epochs", "1000")
    out, err = cli.communicate(timeout=60)
    assert cli.returncode in (0, 1), err
    report = json.loads(out)
    assert report["stopped"] == "timeout" and report["steps"] > 0
    # a schedule halving the rate every 2 epochs is spent after ~14 of 1000 epochs: the only verdict it may earn
    assert {v["id"] for v in report["verdicts"]} <= {"lr-schedule-ends-early"}
    assert len(report["series"]["loss"]) == report["steps"]
    time.sleep(0.5)
    assert processes_with(TOKEN_ENV, token) == []


def test_killed_cli_takes_the_whole_tree_with_it(tmp_path):
    metrics = tmp_path / "m.jsonl"
    token = uuid.uuid4().hex
    cli = _start(token, "--metrics", str(metrics), str(SCRIPTS / "healthy_classifier.py"), "--", "--epochs", "1000")
    try:
        deadline = time.monotonic() + 60
        while not (metrics.exists() and '"kind": "step"' in metrics.read_text()):
            assert time.monotonic() < deadline, "the run did not get going"
            time.sleep(0.1)
        assert len(processes_with(TOKEN_ENV, token)) >= 3  # the CLI, the guard and the script
        cli.kill()  # SIGKILL: no handler runs; the guard sees its lifeline close
        cli.wait(timeout=10)
        deadline = time.monotonic() + 10
        while processes_with(TOKEN_ENV, token) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert processes_with(TOKEN_ENV, token) == []
    finally:
        if cli.poll() is None:
            cli.kill()


def test_script_that_raises_mid_run_is_an_error_with_its_traceback(tmp_path):
    script = tmp_path / "raises.py"
    script.write_text(
        "import torch\n"
        "model = torch.nn.Linear(4, 1)\n"
        "opt = torch.optim.SGD(model.parameters(), lr=0.1)\n"
        "for step in range(100):\n"
        "    loss = model(torch.randn(8, 4)).pow(2).mean()\n"
        "    opt.zero_grad()\n"
        "    loss.backward()\n"
        "    opt.step()\n"
        "    if step == 29:\n"
        "        raise RuntimeError('checkpoint folder is missing')\n")
    proc = _cli(str(script))
    assert proc.returncode == 2, proc.stderr
    assert "torchsanity watch: " in proc.stdout and "30 step(s), the script raised" in proc.stdout
    assert "The script raised RuntimeError: checkpoint folder is missing" in proc.stdout
    assert f'File "{script}", line 10' in proc.stdout  # the script's own frame, not the harness's
