"""Shared fixtures: probe outcomes of the test scripts, computed once and a few at a time."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
REPO = Path(__file__).resolve().parents[2]
ALL_BUT_DETERMINISM = [
    "initial-loss", "overfit-batch", "input-independence", "batch-independence", "gradient-flow", "lr-range",
    "data-stats",
]

# script -> keyword arguments for run_probe
VERDICT_RUNS = {
    "healthy_classifier": {},
    "nanogpt_style": {},
    "big_final_layer": {"checks": ["initial-loss", "gradient-flow"]},
    "softmax_into_ce": {"checks": ["initial-loss", "overfit-batch"]},
    "batch_mixing": {"checks": ["batch-independence", "initial-loss"]},
    "ignores_input": {"checks": ["input-independence", "batch-independence"]},
    "lr25": {"checks": ["overfit-batch", "lr-range", "gradient-flow"]},
    "unseeded": {"checks": ["determinism", "initial-loss"]},
    "regression_mean50": {"checks": ["initial-loss", "data-stats"]},
    "amp_compiled": {"checks": ["initial-loss", "overfit-batch", "batch-independence", "gradient-flow"]},
}


@pytest.fixture(scope="session")
def outcomes():
    """Futures of ProbeOutcome per verdict script; three probes run at a time."""
    pool = ThreadPoolExecutor(max_workers=3)
    futures = {name: pool.submit(run_probe, str(SCRIPTS / f"{name}.py"), timeout=240, **kw)
               for name, kw in VERDICT_RUNS.items()}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture
def processes_with():
    """A function listing live processes whose command line mentions a token."""
    return _processes_with


@pytest.fixture
def scripts_dir() -> Path:
    return SCRIPTS


def _processes_with(token: str) -> list[int]:
    """Live processes whose command line mentions ``token`` (zombies excluded)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmd = fh.read()
            with open(f"/proc/{pid}/stat", "rb") as fh:
                stat = fh.read().decode(errors="replace")
        except OSError:
            continue
        if token.encode() in cmd and stat[stat.rindex(")") + 2:].split()[0] != "Z":
            found.append(int(pid))
    return found
