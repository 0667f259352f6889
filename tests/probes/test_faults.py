"""Faults: the script raises, hangs, runs out of memory, cannot be driven; cancel and Ctrl-C; no stray process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
import uuid

import pytest

from torchsanity.server.probe_runner import run_probe


def test_script_exception_is_reported_with_its_traceback(scripts_dir):
    outcome = run_probe(str(scripts_dir / "raises_before_backward.py"), checks=["initial-loss"], timeout=120)
    err = outcome.report["error"]
    assert outcome.exit_code == 2
    assert err["source"] == "script" and err["type"] == "ValueError"
    assert "labels.csv has 3 columns" in err["message"]
    assert "raises_before_backward.py" in err["traceback"] and "load_labels" in err["traceback"]
    assert "probes/child.py" not in err["traceback"] and "runpy" not in err["traceback"]


def test_checks_measured_before_the_script_raises_are_kept(scripts_dir):
    outcome = run_probe(str(scripts_dir / "raises_after_probe.py"), checks=["initial-loss", "gradient-flow"],
                        timeout=120)
    assert outcome.exit_code == 2
    assert outcome.report["error"]["type"] == "RuntimeError"
    assert "could not upload" in outcome.report["error"]["message"]
    assert [c["id"] for c in outcome.report["checks"]] == ["initial-loss", "gradient-flow"]
    assert {c["status"] for c in outcome.report["checks"]} == {"pass"}


def test_hanging_script_times_out_and_its_whole_tree_is_killed(scripts_dir, processes_with):
    token = f"tsanity-hang-{uuid.uuid4().hex}"
    outcome = run_probe(str(scripts_dir / "hangs.py"), [token], checks=["initial-loss"], timeout=12)
    assert outcome.exit_code == 2
    assert outcome.report["timed_out"] is True
    assert "did not finish within 12 s" in outcome.report["error"]["message"]
    assert "waiting for data" in outcome.output  # the script really ran (and started its helper)
    assert processes_with(token) == []


def test_cancel_kills_the_tree_promptly(scripts_dir, processes_with):
    token = f"tsanity-cancel-{uuid.uuid4().hex}"
    cancel = threading.Event()

    def on_event(ev):
        if ev.get("event") == "log" and "waiting for data" in ev.get("text", ""):
            cancel.set()

    started = time.monotonic()
    outcome = run_probe(str(scripts_dir / "hangs.py"), [token], checks=["initial-loss"], timeout=200,
                        on_event=on_event, cancel=cancel)
    assert cancel.is_set()
    assert outcome.exit_code == 2 and outcome.report["cancelled"] is True
    assert time.monotonic() - started < 150
    assert processes_with(token) == []


def test_ctrl_c_on_the_command_line_kills_the_tree(scripts_dir, processes_with):
    token = f"tsanity-sigint-{uuid.uuid4().hex}"
    cli = subprocess.Popen([sys.executable, "-m", "torchsanity.server", "probe", "--checks", "initial-loss",
                            str(scripts_dir / "hangs.py"), token], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while len(processes_with(token)) < 2 and time.monotonic() < deadline:  # the script and its helper
            time.sleep(0.2)
        assert len(processes_with(token)) >= 2, "the script never started"
        cli.send_signal(signal.SIGINT)
        _, err = cli.communicate(timeout=60)
        assert cli.returncode == 2, err
        assert b"interrupted" in err
        assert processes_with(token) == []
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait()


def test_out_of_memory_is_reported_as_such(scripts_dir):
    outcome = run_probe(str(scripts_dir / "oom.py"), checks=["initial-loss"], timeout=120)
    assert outcome.exit_code == 2
    assert outcome.report["oom"] is True
    assert outcome.report["error"]["oom"] is True


def test_script_without_backward_says_why(scripts_dir):
    outcome = run_probe(str(scripts_dir / "no_backward.py"), checks=["initial-loss"], timeout=120)
    assert outcome.exit_code == 2
    assert outcome.report["error"]["type"] == "NoBackward"
    assert "without calling backward()" in outcome.report["error"]["message"]
    assert "--entry" in outcome.report["error"]["message"]


def test_two_models_cannot_be_driven_and_the_reason_is_exact(scripts_dir):
    outcome = run_probe(str(scripts_dir / "two_models.py"), checks=["initial-loss"], timeout=120)
    err = outcome.report["error"]
    assert outcome.exit_code == 2 and err["type"] == "CannotDrive"
    assert "2 separately called models" in err["message"]
    assert "Sequential built at line 7" in err["message"] and "Sequential built at line 8" in err["message"]
    assert "--entry" in err["message"]


def test_explicit_entry_point(scripts_dir):
    outcome = run_probe("", entry="entry_point:build", cwd=str(scripts_dir), timeout=120,
                        checks=["initial-loss", "overfit-batch", "batch-independence", "determinism"])
    assert "error" not in outcome.report, outcome.report.get("error")
    assert {c["id"]: c["status"] for c in outcome.report["checks"]} == {
        "initial-loss": "pass", "overfit-batch": "pass", "batch-independence": "pass", "determinism": "pass"}
    assert outcome.report["batch"]["source"] == "entry"
    assert outcome.exit_code == 0


def test_bad_input_gets_clear_messages(tmp_path):
    outcome = run_probe(str(tmp_path / "missing.py"))
    assert outcome.exit_code == 2 and "no such script" in outcome.report["error"]["message"]
    with pytest.raises(ValueError, match="unknown check"):
        run_probe(str(tmp_path / "missing.py"), checks=["overfit"])
    with pytest.raises(ValueError, match="--device"):
        run_probe(str(tmp_path / "missing.py"), device="tpu")


def test_side_effects_are_disabled(tmp_path):
    script = tmp_path / "env_probe.py"
    script.write_text("import os\nprint('WANDB_MODE=' + os.environ.get('WANDB_MODE', ''))\n")
    outcome = run_probe(str(script), checks=["initial-loss"], timeout=60)
    assert "WANDB_MODE=disabled" in outcome.output
    assert outcome.report["error"]["type"] == "NoBackward"


def test_device_cuda_without_a_gpu_and_interpreter_without_torch(scripts_dir, tmp_path):
    import shutil

    import torch

    script = str(scripts_dir / "no_backward.py")
    if not torch.cuda.is_available():
        outcome = run_probe(script, device="cuda", checks=["initial-loss"], timeout=120)
        assert outcome.exit_code == 2 and outcome.report["error"]["type"] == "NoCuda"
        assert "sees no CUDA device" in outcome.report["error"]["message"]
    bare = shutil.which("python3", path="/usr/bin:/bin")
    if bare and subprocess.run([bare, "-c", "import torch"], capture_output=True).returncode != 0:
        outcome = run_probe(script, python=bare, checks=["initial-loss"], timeout=120)
        assert outcome.exit_code == 2
        assert "no torch installed" in outcome.report["error"]["message"]
