"""The probe's options are the same in every front end: what the harness (``run_probe``) takes, the command line
offers, the ``torchsanity/runProbe`` request accepts (``ProbeParams``), VS Code's ``probe.*`` settings forward
(package.json + extension/src/settings.ts) and docs/neovim.md documents. An option added on one side only fails
here."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import os
import re
from pathlib import Path

import pytest
from torchsanity.probes.budget import BUDGET_ENV

from torchsanity.server import probe_command
from torchsanity.server.lsp_probe import ProbeParams, _call_run_probe
from torchsanity.server.probe_runner import run_probe

ROOT = Path(__file__).resolve().parents[2]
# run_probe's keywords that are not options a person sets: the language server fills them in itself
PLUMBING = {"cwd", "on_event", "cancel"}
# options of the command line only, and why
CLI_ONLY = {
    "nproc_per_node": "torchrun launches of a script are a command-line matter",
    "format": "output format of the CLI", "output": "output file of the CLI",
    "script": "the request's uri", "script_args": "the request's args",
}
# VS Code settings that are not request params, and why
EDITOR_ONLY = {"openReport": "whether VS Code opens the report view"}


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def harness_options() -> set[str]:
    return set(inspect.signature(run_probe).parameters) - {"script", "script_args"} - PLUMBING


def request_params() -> dict[str, str]:
    """ProbeParams field -> its name in the request (camelCase)."""
    fields = {f.name for f in dataclasses.fields(ProbeParams)} - {"uri", "script", "token"}
    return {name: camel(name) for name in fields}


def test_every_harness_option_is_a_request_param_and_passed_on():
    missing = harness_options() - set(request_params()) - set(CLI_ONLY)
    assert missing == set(), "run_probe options the language server cannot pass"
    passed = set(re.findall(r'"(\w+)": params\.\w+', inspect.getsource(_call_run_probe)))
    # args: run_probe's positional script_args; cwd: resolved (default the workspace folder), then passed
    assert set(request_params()) <= passed | {"args", "cwd"}


def test_every_command_line_option_the_harness_takes_is_a_request_param():
    parser = argparse.ArgumentParser()
    probe_command.add_arguments(parser)
    dests = {a.dest for a in parser._actions if a.dest != "help"}
    for dest in dests & harness_options():
        assert dest in request_params() or dest in CLI_ONLY, dest


def test_vscode_settings_forward_exactly_the_request_params():
    manifest = json.loads((ROOT / "package.json").read_text(encoding="utf-8"))
    settings = {k.removeprefix("torchsanity.probe.") for k in manifest["contributes"]["configuration"]["properties"]
                if k.startswith("torchsanity.probe.")} - set(EDITOR_ONLY)
    forwarded = set(re.findall(r'"(\w+)"', re.search(r"const PROBE_PARAMS = \[(.*?)\]",
                                                     (ROOT / "extension/src/settings.ts").read_text()).group(1)))
    assert settings == forwarded
    assert settings <= set(request_params().values())
    for name in ("step", "batchDim", "allowMixing"):
        assert name in settings


def test_the_neovim_guide_documents_every_request_param():
    guide = (ROOT / "docs/neovim.md").read_text(encoding="utf-8")
    section = guide[guide.index("`torchsanity/runProbe` params:"):]
    section = section[: section.index("workDoneToken")]
    for param in request_params().values():
        assert f"`{param}`" in section, param


def test_request_params_are_checked_like_the_command_line_options():
    base = {"uri": "file:///tmp/train.py"}
    parsed = ProbeParams.parse({**base, "step": 3, "batchDim": 1, "allowMixing": True, "checkBudget": 2})
    assert (parsed.step, parsed.batch_dim, parsed.allow_mixing, parsed.check_budget) == (3, 1, True, 2.0)
    assert ProbeParams.parse(base).allow_mixing is False and ProbeParams.parse(base).check_budget is None
    for bad in ({"step": 0}, {"step": "2"}, {"batchDim": -1}, {"batchDim": True}, {"allowMixing": 1},
                {"checkBudget": 0}, {"checkBudget": -1.5}, {"checkBudget": "30"}, {"checkBudget": True}):
        try:
            ProbeParams.parse({**base, **bad})
        except Exception as error:  # noqa: BLE001 - pygls' JsonRpcInvalidParams
            assert type(error).__name__ == "JsonRpcInvalidParams", bad
        else:
            raise AssertionError(f"accepted {bad}")


def test_the_check_budget_reaches_the_child_environment_and_not_the_callers(tmp_path, monkeypatch):
    """``check_budget`` (the CLI's --check-budget, the request's ``checkBudget``) goes into the probe child's
    environment, where probes/budget.py reads it; the calling process' own environment is left alone."""
    monkeypatch.delenv(BUDGET_ENV, raising=False)
    script = tmp_path / "show_budget.py"
    script.write_text(f"import os, sys\nprint('budget=' + os.environ.get({BUDGET_ENV!r}, 'none'))\nsys.exit(3)\n")
    seen = []
    for budget in (7.5, None):
        outcome = run_probe(str(script), checks=["initial-loss"], device="cpu", timeout=120, cwd=str(tmp_path),
                            check_budget=budget)
        seen.append(json.dumps(outcome.report.get("error"), default=str))
        assert BUDGET_ENV not in os.environ
    assert "budget=7.5" in seen[0] and "budget=none" in seen[1], seen
    with pytest.raises(ValueError, match="--check-budget"):
        run_probe(str(script), check_budget=0)


def test_the_command_line_passes_its_check_budget_to_the_harness():
    parser = argparse.ArgumentParser()
    probe_command.add_arguments(parser)
    assert parser.parse_args(["train.py", "--check-budget", "3"]).check_budget == 3.0
    source = inspect.getsource(probe_command.run)
    assert "check_budget=args.check_budget" in source and "environ" not in source
