"""Issue 10 item 5: training in torch.multiprocessing workers is followed into the first worker, or reported as
such — never as "no backward"."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
CHECKS = ["initial-loss", "gradient-flow", "overfit-batch", "batch-independence", "determinism"]
RUNS = {
    "ddp-spawn": ("spawn_ddp_workers.py", []),
    "hogwild-fork": ("hogwild_workers.py", []),
    "hogwild-spawn": ("hogwild_workers.py", ["--start-method", "spawn"]),
}


@pytest.fixture(scope="module")
def outcomes():
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_probe, str(SCRIPTS / script), args, checks=CHECKS, steps=20, timeout=300)
                   for name, (script, args) in RUNS.items()}
        return {name: f.result() for name, f in futures.items()}


def _statuses(report: dict) -> dict[str, str]:
    return {c["id"]: c["status"] for c in report["checks"]}


def test_mp_spawn_ddp_workers_are_followed_into_rank_0(outcomes):
    outcome = outcomes["ddp-spawn"]
    report = outcome.report
    assert "error" not in report, report.get("error")
    assert _statuses(report) == {c: "pass" for c in CHECKS}, report["checks"]
    assert any("2 mp.spawn workers (line 44)" in n and "rank 0 of a world of one" in n for n in report["notes"])
    assert report["sites"]["loop"]["line"] == 37  # the backward() inside the worker function
    assert report["step"]["restore"]["identical"] is True
    assert outcome.exit_code == 0


def test_forked_process_workers_are_followed_into_the_first(outcomes):
    outcome = outcomes["hogwild-fork"]
    report = outcome.report
    assert "error" not in report, report.get("error")
    # always the first worker started (seeded with its rank): the determinism run probes the same one
    assert _statuses(report) == {c: "pass" for c in CHECKS}, report["checks"]
    assert any("first multiprocessing.Process worker" in n and "line 42" in n for n in report["notes"])
    assert report["sites"]["loop"]["line"] == 28
    assert report["step"]["restore"]["identical"] is True
    assert outcome.exit_code == 0


def test_spawned_process_workers_are_reported_as_such_not_as_no_backward(outcomes):
    outcome = outcomes["hogwild-spawn"]
    error = outcome.report["error"]
    assert error["type"] == "SpawnedWorkers" and "line 42" in error["message"], error
    assert "'spawn'" in error["message"] and "without calling backward" not in error["message"]
    assert outcome.exit_code == 2
