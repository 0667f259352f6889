"""The front end of `torchsanity watch` on the command line: the live dashboard on a terminal (a real pseudo-terminal),
plain progress lines otherwise, the default metrics and report files, TensorBoard event files, `--epochs`,
`--device`, Ctrl-C under the dashboard. The real CLI in a subprocess, real torch on CPU."""

from __future__ import annotations

import json
import math
import os
import pty
import re
import select
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

from torchsanity.server.watch_dashboard import sparkline
from watch_helpers import processes_with

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REGRESSION = SCRIPTS / "regression_epochs.py"
TOKEN_ENV = "TS_WATCH_CLI_TEST_TOKEN"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _env(token: str = "", **extra) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", **extra)
    if token:
        env[TOKEN_ENV] = token
    return env


def _cli(cwd: Path, *args, env: dict | None = None, timeout: float = 150) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torchsanity.server", "watch", *args], cwd=cwd, env=env or _env(),
                          capture_output=True, text=True, timeout=timeout)


class Terminal:
    """The CLI with stderr on a pseudo-terminal (what a person sees) and stdout on a pipe (the JSON report)."""

    def __init__(self, cwd: Path, *args, token: str = ""):
        master, slave = pty.openpty()
        env = _env(token, TERM="xterm-256color", COLUMNS="120", LINES="40")
        self.proc = subprocess.Popen([sys.executable, "-m", "torchsanity.server", "watch", *args], cwd=cwd, env=env,
                                     stdin=slave, stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        self.master = master
        self.screen = b""

    def read(self, seconds: float) -> str:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.master], [], [], 0.1)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:  # the other side is closed
                    break
                if not data:
                    break
                self.screen += data
        return self.text

    @property
    def text(self) -> str:
        return ANSI.sub("", self.screen.decode("utf-8", errors="replace"))

    def finish(self, timeout: float = 120) -> dict:
        deadline = time.monotonic() + timeout
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.read(0.5)
        self.read(0.5)
        out = self.proc.stdout.read()
        self.proc.wait(5)
        os.close(self.master)
        return json.loads(out)


def test_sparkline_scales_between_min_and_max_and_marks_non_finite():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == "▁▂▃▄▅▆▇█"
    assert sparkline([3.0, float("nan"), None, 3.0]) == "▅! ▅"
    # decades apart: a log scale, so the small values are not all on the floor
    assert sparkline([1e-4, 1e-3, 1e-2, 1e-1, 1.0]) == "▁▃▅▇█"
    assert sparkline(list(range(100)), width=10) == sparkline(list(range(90, 100)))


def test_terminal_dashboard_shows_the_curves_and_the_verdict_as_it_fires(tmp_path):
    term = Terminal(tmp_path, "--format", "json", "--metrics", "m.jsonl", "-o", "r.html",
                    str(SCRIPTS / "diverging_lr.py"))
    report = term.finish()
    screen = term.text
    assert report["steps"] > 120 and any(v["id"] == "divergence" for v in report["verdicts"])
    last = screen[screen.rindex("torchsanity watch — diverging_lr.py"):]  # the last frame of the dashboard
    assert f"step {report['steps']}" in last.splitlines()[0]
    rows = {line.split()[1]: line for line in last.splitlines() if line.startswith("│ ") and len(line.split()) > 3}
    assert set(rows) >= {"loss", "grad", "lr", "samples/s"}
    # the latest values are the run's, drawn with a sparkline
    assert f"{float(report['series']['loss'][-1]):.4g}" in rows["loss"]  # "nan" / "inf" in the report
    assert f"{float(report['series']['lr'][-1][0]):.4g}" in rows["lr"]
    assert re.search("[▁▂▃▄▅▆▇█!]{40,}", rows["loss"]) and "!" in rows["loss"]  # the divergence, drawn
    assert "divergence" in last and "step " in last
    # the script's own output printed above the dashboard, the file paths below it
    assert "epoch 0: last loss" in screen
    assert "report written to r.html, metrics in" in screen and (tmp_path / "r.html").is_file()


def test_not_a_terminal_prints_plain_progress_lines_and_writes_the_default_files(tmp_path):
    proc = _cli(tmp_path, "--format", "json", str(REGRESSION), "--", "--epochs", "3")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["steps"] == 60 and report["verdicts"] == []
    assert "╭" not in proc.stderr and "\x1b[" not in proc.stderr  # no dashboard, no escape codes
    progress = re.findall(r"^torchsanity watch: step (\d+) · epoch \d+ · \d+ s: loss (\S+), grad norm \S+, lr (\S+), ",
                          proc.stderr, re.MULTILINE)
    assert progress and progress[-1] == ("60", f"{report['series']['loss'][-1]:.4g}", "0.05")
    # always a metrics file and the HTML report, by default in the working directory
    metrics, page = tmp_path / "torchsanity-watch.jsonl", tmp_path / "torchsanity-watch.html"
    records = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in records if r["kind"] == "step"] == list(range(1, 61))
    assert report["metrics"] == str(metrics)
    assert page.read_text().startswith("<!DOCTYPE html>")
    assert f"report written to torchsanity-watch.html, metrics in {metrics}" in proc.stderr


def test_tensorboard_event_files_hold_every_curve(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    proc = _cli(tmp_path, "--format", "json", "--every", "10", "--tensorboard", "tb", str(REGRESSION), "--",
                "--epochs", "2")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    events = EventAccumulator(str(tmp_path / "tb"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"loss", "lr/group_0", "step_seconds"} <= set(tags)
    loss = events.Scalars("loss")
    assert [e.step for e in loss] == report["series"]["step"]
    assert all(math.isclose(e.value, x, rel_tol=1e-6) for e, x in zip(loss, report["series"]["loss"]))
    taken = [s for s, g in zip(report["series"]["step"], report["series"]["grad_norm"]) if g is not None]
    assert [e.step for e in events.Scalars("grad_norm")] == taken
    ratio = events.Scalars("update_ratio/0.weight")  # per layer, at the sampled steps
    assert [e.step for e in ratio] == [s["step"] for s in report["samples"]]
    assert report["tensorboard"] == str(tmp_path / "tb")


def test_tensorboard_missing_is_a_clear_message_and_nothing_runs(tmp_path):
    # an interpreter where `import tensorboard` fails, as when the package is not installed
    shadow = tmp_path / "shadow" / "tensorboard"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ImportError('No module named tensorboard')\n")
    marker = tmp_path / "ran"
    script = tmp_path / "train.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\n")
    proc = _cli(tmp_path, "--tensorboard", "tb", str(script),
                env=_env(PYTHONPATH=os.pathsep.join([str(shadow.parent), os.environ.get("PYTHONPATH", "")])))
    assert proc.returncode == 2
    assert "--tensorboard needs the tensorboard package" in proc.stderr and "pip install tensorboard" in proc.stderr
    assert not marker.exists() and not (tmp_path / "tb").exists()


def test_device_cpu_hides_the_gpus_from_the_script(tmp_path):
    proc = _cli(tmp_path, "--format", "json", "--device", "cpu", "--steps", "5", str(REGRESSION), "--",
                "--report-env", env=_env(CUDA_VISIBLE_DEVICES="0"))
    assert proc.returncode == 0, proc.stderr
    assert "CUDA_VISIBLE_DEVICES=\n" in proc.stderr
    proc = _cli(tmp_path, "--format", "json", "--steps", "5", str(REGRESSION), "--", "--report-env",
                env=_env(CUDA_VISIBLE_DEVICES="0"))
    assert "CUDA_VISIBLE_DEVICES=0\n" in proc.stderr  # auto: the script sees what it would see


def test_epochs_stops_after_that_many_epochs(tmp_path):
    proc = _cli(tmp_path, "--format", "json", "--epochs", "2", str(REGRESSION), "--", "--epochs", "10")
    report = json.loads(proc.stdout)
    assert report["stopped"] == "epochs", proc.stderr
    assert report["steps"] == 40  # 20 steps per epoch
    assert "epoch 1: loss" in proc.stderr and "epoch 2: loss" not in proc.stderr


def test_ctrl_c_under_the_dashboard_keeps_the_report_and_leaves_no_process(tmp_path):
    token = uuid.uuid4().hex
    term = Terminal(tmp_path, "--format", "json", "--metrics", "m.jsonl", str(REGRESSION), "--", "--epochs",
                    "1000", "--pause", "0.01", token=token)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not re.search(r"step (\d{2,})", term.read(0.5)):
            pass
        assert len(processes_with(TOKEN_ENV, token)) >= 3  # the CLI, the guard and the script
        term.proc.send_signal(signal.SIGINT)
        report = term.finish(60)
    finally:
        if term.proc.poll() is None:
            term.proc.kill()
    assert report["stopped"] == "SIGINT" and report["steps"] >= 10 and "error" not in report
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert records[-1]["kind"] == "end" and records[-1]["steps"] >= report["steps"]
    assert (tmp_path / "torchsanity-watch.html").is_file()
    assert "stopped by SIGINT" in term.text and "report is kept" in term.text
    deadline = time.monotonic() + 10
    while processes_with(TOKEN_ENV, token) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_with(TOKEN_ENV, token) == []


def _gloo() -> bool:
    import torch.distributed as dist
    return dist.is_available() and dist.is_gloo_available()


@pytest.mark.skipif(not _gloo(), reason="torch.distributed with gloo is not available")
def test_a_metrics_path_used_before_starts_empty_for_every_rank(tmp_path):
    """Rank files of an earlier run under the same `--metrics` would be read back as this run's other ranks."""
    (tmp_path / "m.jsonl").write_text('{"kind": "start", "rank": 0, "world_size": 2}\n')
    stale = tmp_path / "m.jsonl.rank1"
    stale.write_text('{"kind": "start", "rank": 1, "world_size": 2}\n{"kind": "step", "step": 1, "loss": 9.0}\n')
    proc = _cli(tmp_path, "--format", "json", "--metrics", "m.jsonl", "--steps", "5", str(REGRESSION))
    assert proc.returncode == 0, proc.stderr
    assert not stale.exists()
    records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
    assert records[0]["kind"] == "start" and records[0]["world_size"] == 1
    assert json.loads(proc.stdout)["steps"] == 5


def test_nproc_per_node_watches_every_rank_and_reports_their_drift(tmp_path):
    """`watch --nproc-per-node 2` runs the script under torchrun; rank 1 skipping the gradient average is caught."""
    proc = _cli(tmp_path, "--format", "json", "--every", "10", "--nproc-per-node", "2",
                str(SCRIPTS / "ddp_skip_allreduce.py"), "--", "--steps", "40", timeout=180)
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    report = json.loads(proc.stdout)
    assert report["steps"] == 40
    assert [v["id"] for v in report["verdicts"]] == ["ranks-desynchronised"], report["verdicts"]
    starts = [json.loads(line) for line in Path(report["metrics"]).read_text().splitlines()][:1]
    assert starts[0]["kind"] == "start" and starts[0]["world_size"] == 2 and starts[0]["rank"] == 0
