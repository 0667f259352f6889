"""The probe's checks, one module each, in report order. Every module names its ``ID`` and its ``check``
function; ``CHECK_IDS`` is the one list of check ids (the CLI, the settings in package.json and the report take
theirs from it). Importing this package loads no check (and no torch): ``CHECKS`` imports them on first use.

``determinism`` compares two fresh runs, so the parent process runs it on the two reports; every other check
runs in the child on the captured training step (``check(ctx: ProbeContext) -> CheckResult``)."""

from __future__ import annotations

from importlib import import_module
from typing import Any, Callable

MODULES = ("initial_loss", "overfit_batch", "generalization", "input_independence", "batch_independence",
           "time_independence", "gradient_flow", "determinism", "lr_range", "data_stats")
CHECK_IDS = tuple(name.replace("_", "-") for name in MODULES)
PARENT_CHECKS = ("determinism",)  # run by the parent on the reports of two runs, not in the child


def load(check_id: str) -> Any:
    """The module of one check (imports torch for the checks the child runs)."""
    module = import_module(f".{MODULES[CHECK_IDS.index(check_id)]}", __name__)
    if module.ID != check_id:
        raise ImportError(f"{module.__name__} names its check {module.ID!r}, not {check_id!r}")
    return module


def _registry() -> dict[str, Callable[..., Any]]:
    """Check id -> the check function of every check the child runs, in report order."""
    return {cid: load(cid).check for cid in CHECK_IDS if cid not in PARENT_CHECKS}


def __getattr__(name: str) -> Any:
    if name == "CHECKS":
        checks = _registry()
        globals()["CHECKS"] = checks
        return checks
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
