"""Which backward() is probed, and what the run itself reports (issue 10, items 5 and 8): real scripts, real torch,
through run_probe and the real CLI."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchsanity.server import probe_report
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[2]

RUNS = {
    "demo": ("autograd_demo_first", [], {"checks": ["initial-loss", "determinism"]}),
    "step3": ("autograd_demo_first", [], {"checks": ["initial-loss", "gradient-flow"], "step": 3}),
    "step99": ("autograd_demo_first", [], {"checks": ["initial-loss", "determinism"], "step": 99}),
    "manual": ("manual_sgd", [], {"checks": ["initial-loss"]}),
    "spawn": ("spawn_workers", [], {"checks": ["initial-loss", "determinism"]}),
    "badarg": ("autograd_demo_first", ["--bogus"], {"checks": ["initial-loss", "lr-range", "determinism"]}),
}


@pytest.fixture(scope="module")
def runs():
    pool = ThreadPoolExecutor(max_workers=3)
    futures = {key: pool.submit(run_probe, str(SCRIPTS / f"{name}.py"), args, timeout=180, **kw)
               for key, (name, args, kw) in RUNS.items()}
    yield lambda key: futures[key].result(timeout=600)
    pool.shutdown(wait=True, cancel_futures=True)


def _statuses(outcome):
    return {c["id"]: c["status"] for c in outcome.report["checks"]}


def test_an_autograd_demo_before_the_loop_is_not_the_probed_step(runs):
    outcome = runs("demo")
    report = outcome.report
    assert "error" not in report, report.get("error")
    assert _statuses(outcome) == {"initial-loss": "pass", "determinism": "pass"}
    assert report["loss"]["kind"] == "cross-entropy" and report["loss"]["classes"] == 4  # the classifier's loss
    assert {k: report["step"][k] for k in ("index", "followed_by", "skipped_backwards")} == {
        "index": 1, "followed_by": "optimizer step", "skipped_backwards": 1}
    assert report["step"]["restore"]["identical"] is True
    notes = " ".join(report["notes"])
    assert "skipped 1 backward() call(s) that reach no parameter" in notes
    assert "learning rate raised from 0.005 (warmup) to the scheduler's initial_lr 0.05" in notes


def test_step_picks_a_later_training_step(runs):
    outcome = runs("step3")
    report = outcome.report
    assert "error" not in report, report.get("error")
    assert report["step"]["index"] == 3
    # the script prints each step's loss after its optimizer step: steps 1 and 2 ran, step 3 was stopped at its
    # optimizer step, and its loss is neither of the earlier ones
    printed = {int(line.split()[1]): float(line.split()[3]) for line in outcome.output.splitlines()
               if line.startswith("step ")}
    assert sorted(printed) == [1, 2]
    assert all(abs(report["loss"]["value"] - v) > 1e-3 for v in printed.values())
    assert _statuses(outcome)["initial-loss"] == "skip"  # not the loss at initialisation any more
    assert _statuses(outcome)["gradient-flow"] in ("pass", "warn")


def test_a_step_past_the_end_says_how_many_steps_there_were(runs):
    report = runs("step99").report
    assert report["error"]["type"] == "NoSuchStep"
    assert "ended after 16 step(s)" in report["error"]["message"]
    assert report["checks"] == []  # no determinism row after a harness error
    assert report["not_run"] == {"checks": ["initial-loss", "determinism"],
                                 "reason": "the script never reached a training step"}
    text = probe_report.render_text(report)
    assert "not run: initial-loss, determinism" in text and "OK" not in text


def test_hand_written_sgd_is_still_probed_at_its_first_backward(runs):
    report = runs("manual").report
    assert "error" not in report, report.get("error")
    assert report["step"]["index"] == 1 and report["step"]["followed_by"] == "parameter update"
    assert "updated by hand" in " ".join(report["notes"])


def test_training_in_mp_spawn_workers_is_followed_into_the_first_worker(runs):
    outcome = runs("spawn")
    report = outcome.report
    assert "error" not in report, report.get("error")
    assert {c["id"]: c["status"] for c in report["checks"]} == {"initial-loss": "pass", "determinism": "pass"}
    assert any("2 mp.spawn workers (line 19)" in n for n in report["notes"])
    assert outcome.exit_code == 0


def test_argparse_errors_reach_the_user(runs):
    report = runs("badarg").report
    error = report["error"]
    assert error["type"] == "ScriptExited" and "code 2" in error["message"]
    assert "unrecognized arguments: --bogus" in error["output"]
    assert report["checks"] == [] and report["not_run"]["checks"] == ["initial-loss", "lr-range", "determinism"]
    proc = subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", "--checks", "initial-loss",
                           str(SCRIPTS / "autograd_demo_first.py"), "--", "--epochs", "x"], cwd=REPO,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 2
    assert "argument --epochs: invalid int value: 'x'" in proc.stdout
    assert "usage: autograd_demo_first.py" in proc.stdout
    assert proc.stdout.rstrip().endswith("ERROR: no checks ran")


def test_cli_text_output_shows_the_harness_changes_and_the_step():
    proc = subprocess.run([sys.executable, "-m", "torchsanity.server", "probe", "--checks", "initial-loss",
                           "--step", "2", str(SCRIPTS / "autograd_demo_first.py")], cwd=REPO,
                          capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "note: skipped 1 backward() call(s) that reach no parameter (autograd demos); probed training step 2" \
        in proc.stdout
    assert "note: learning rate raised from" in proc.stdout
    assert "SKIP   initial-loss" in proc.stdout


def test_a_summary_is_never_ok_when_a_check_errored():
    report = {"script": "train.py", "checks": [
        {"id": "initial-loss", "status": "pass", "message": "ok", "line": 3},
        {"id": "lr-range", "status": "error", "message": "the check could not run: IndexError", "line": 5}]}
    assert probe_report.verdict_line(report) == "ERROR: 1 pass, 1 error"
    report["checks"][1]["status"] = "warn"
    assert probe_report.verdict_line(report) == "OK: 1 pass, 1 warn"
