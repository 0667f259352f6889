"""The composite GitHub Action (action.yml), its steps run as a runner would: the inputs and `runner.temp`
substituted into each step's env and script, the script run with `bash --noprofile --norc -eo pipefail`,
$GITHUB_ENV carried to the next step and $GITHUB_OUTPUT read back. torchsanity is installed from the wheel built
from this checkout (the `version` input takes any pip requirement)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from packaging_helpers import EXAMPLE_FINDINGS, ROOT, clean_env

ACTION = yaml.safe_load((ROOT / "action.yml").read_text(encoding="utf-8"))
ANNOTATION = re.compile(r"^::warning file=(?P<file>[^,]+),line=(?P<line>\d+),col=\d+,title=(?P<code>SAN\d+)::", re.M)
CLEAN = '''import torch


def train(model, loader, optimizer, loss_fn, epochs: int = 3) -> None:
    torch.manual_seed(0)
    model.train()
    for _ in range(epochs):
        for inputs, targets in loader:
            optimizer.zero_grad()
            loss = loss_fn(model(inputs), targets)
            loss.backward()
            optimizer.step()
'''


def _substitute(text: str, inputs: dict[str, str], runner_temp: Path) -> str:
    """GitHub's `${{ ... }}` expressions, the ones this action uses; any other one fails the test."""
    def value(match: re.Match) -> str:
        expression = match.group(1).strip()
        if expression.startswith("inputs."):
            return inputs[expression[len("inputs."):]]
        if expression == "runner.temp":
            return str(runner_temp)
        raise AssertionError(f"action.yml uses an expression the test runner does not know: {expression}")
    return re.sub(r"\$\{\{(.*?)\}\}", value, text)


def run_action(workspace: Path, runner_temp: Path, **given: str) -> list[dict]:
    """Run action.yml's steps in ``workspace``; one result (returncode, stdout, stderr, outputs) per step run."""
    inputs = {name: spec.get("default", "") for name, spec in ACTION["inputs"].items()}
    unknown = set(given) - set(inputs)
    assert not unknown, f"not inputs of the action: {unknown}"
    inputs.update(given)
    carried: dict[str, str] = {}
    results = []
    for index, step in enumerate(ACTION["runs"]["steps"]):
        if "uses" in step:
            # the one step a shell cannot run: actions/setup-python, only when python-version is given
            assert step["uses"].startswith("actions/setup-python@") and step["if"] == "inputs.python-version != ''"
            assert not inputs["python-version"], "the test runs with the current Python"
            continue
        assert step["shell"] == "bash"
        env_file, output_file = runner_temp / f"env{index}", runner_temp / f"output{index}"
        env_file.write_text("")
        output_file.write_text("")
        env = clean_env() | carried | {"GITHUB_ENV": str(env_file), "GITHUB_OUTPUT": str(output_file),
                                        "GITHUB_WORKSPACE": str(workspace), "RUNNER_TEMP": str(runner_temp)}
        env.update({k: _substitute(str(v), inputs, runner_temp) for k, v in step.get("env", {}).items()})
        script = runner_temp / f"step{index}.sh"
        script.write_text(_substitute(step["run"], inputs, runner_temp))
        done = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)], cwd=workspace,
                              env=env, capture_output=True, text=True, timeout=600)
        carried.update(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
        outputs = dict(line.split("=", 1) for line in output_file.read_text().splitlines() if "=" in line)
        results.append({"id": step.get("id"), "returncode": done.returncode, "stdout": done.stdout,
                        "stderr": done.stderr, "outputs": outputs})
        if done.returncode:
            break
    return results


@pytest.fixture(scope="module")
def runner_temp(tmp_path_factory) -> Path:
    """One runner temp for the module: the action's venv is created once and reused, as on a warm runner."""
    return tmp_path_factory.mktemp("runner-temp")


@pytest.fixture
def workspace(tmp_path) -> Path:
    (tmp_path / "src").mkdir()
    shutil.copy(ROOT / "examples" / "buggy_training.py", tmp_path / "src" / "train.py")
    (tmp_path / "src" / "clean.py").write_text(CLEAN)
    return tmp_path


@pytest.mark.timeout(900)
def test_github_format_annotates_the_findings(dists, runner_temp, workspace):
    install, check = run_action(workspace, runner_temp, version=str(dists["wheel"]))
    assert install["returncode"] == 0, install["stderr"][-3000:]
    assert install["stdout"].strip().endswith(f"torchsanity {dists['wheel'].name.split('-')[1]}")
    assert check["returncode"] == 1  # findings fail the step, and with it the job
    annotations = [m.groupdict() for m in ANNOTATION.finditer(check["stdout"])]
    assert {a["file"] for a in annotations} == {"src/train.py"}  # nothing on the clean file
    assert EXAMPLE_FINDINGS <= {(a["code"], int(a["line"])) for a in annotations}


def test_sarif_format_writes_the_report_for_code_scanning(dists, runner_temp, workspace):
    steps = run_action(workspace, runner_temp, version=str(dists["wheel"]), format="sarif",
                       **{"sarif-file": "reports/torchsanity.sarif", "args": "src --select SAN1,SAN6"})
    check = steps[-1]
    assert check["id"] == "check" and check["returncode"] == 1, check["stderr"]
    assert check["outputs"] == {"sarif-file": "reports/torchsanity.sarif"}
    assert ACTION["outputs"]["sarif-file"]["value"] == "${{ steps.check.outputs.sarif-file }}"
    assert "::warning" not in check["stdout"]
    sarif = json.loads((workspace / "reports" / "torchsanity.sarif").read_text())
    assert sarif["version"] == "2.1.0"
    results = sarif["runs"][0]["results"]
    found = {(r["ruleId"], r["locations"][0]["physicalLocation"]["region"]["startLine"]) for r in results}
    uris = {r["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] for r in results}
    assert {("SAN101", 48), ("SAN601", 52)} <= found
    assert {code[:4] for code, _ in found} <= {"SAN1", "SAN6"}  # the args reached the CLI
    assert uris == {"src/train.py"}


def test_clean_code_passes(dists, runner_temp, workspace):
    (workspace / "src" / "train.py").unlink()
    *_, check = run_action(workspace, runner_temp, version=str(dists["wheel"]), args="src")
    assert check["returncode"] == 0, check["stdout"] + check["stderr"]
    assert "::warning" not in check["stdout"]


def test_an_unknown_format_is_an_error(dists, runner_temp, workspace):
    *_, check = run_action(workspace, runner_temp, version=str(dists["wheel"]), format="xml")
    assert check["returncode"] == 2
    assert "::error title=torchsanity::format must be github or sarif, not 'xml'" in check["stdout"]
