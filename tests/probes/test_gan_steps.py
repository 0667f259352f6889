"""Issue 10 item 4 (GANs): both steps are probed, and the report says which is the generator's and which the
discriminator's."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from torch import nn
from torchsanity.probes.capture import Recorder, StopProbe
from torchsanity.probes.replay import TapeStep
from torchsanity.server.probe_runner import run_probe

SCRIPTS = Path(__file__).resolve().parent / "scripts"
CHECKS = ["initial-loss", "gradient-flow", "input-independence", "overfit-batch"]
RUNS = {"d-first": [], "g-first": ["--g-first"], "n-critic": ["--n-critic", "3"]}


@pytest.fixture(scope="module")
def gan_reports():
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_probe, str(SCRIPTS / "gan_two_steps.py"), args, checks=CHECKS, steps=20,
                                     timeout=300)
                   for name, args in RUNS.items()}
        return {name: f.result().report for name, f in futures.items()}


def _by_step(report: dict) -> dict[str, dict[str, dict]]:
    out: dict[str, dict[str, dict]] = {}
    for c in report["checks"]:
        out.setdefault((c.get("details") or {}).get("step"), {})[c["id"]] = c
    return out


@pytest.mark.parametrize("run, first, second, partner_index", [
    ("d-first", "discriminator", "generator", 2),
    ("g-first", "generator", "discriminator", 2),
    ("n-critic", "discriminator", "generator", 4),  # three critic steps, then the generator's
])
def test_both_steps_are_probed_and_named(gan_reports, run, first, second, partner_index):
    report = gan_reports[run]
    assert "error" not in report, report.get("error")
    step = report["step"]
    assert step["index"] == 1 and step["role"] == first
    assert step["partner"]["role"] == second and step["partner"]["index"] == partner_index
    assert step["restore"]["identical"] and step["partner"]["restore"]["identical"]
    by_step = _by_step(report)
    assert set(by_step) == {"generator", "discriminator"}
    for role, checks in by_step.items():
        assert set(checks) == set(CHECKS)
        assert all(c["message"].startswith(f"{role} step: ") for c in checks.values())
        assert checks["gradient-flow"]["status"] == "pass", checks["gradient-flow"]
    # the generator's input is noise: input-independence does not apply to it
    assert by_step["generator"]["input-independence"]["status"] == "skip"
    assert "noise" in by_step["generator"]["input-independence"]["message"]
    # each step trains its own model: the sites point at each model and optimizer
    assert by_step["generator"]["gradient-flow"]["line"] == 26
    assert by_step["discriminator"]["gradient-flow"]["line"] == 27
    assert step["partner"]["sites"]["optimizer"]["line"] != report["sites"]["optimizer"]["line"]
    assert any("were both probed" in n for n in report["notes"])


def test_the_pytorch_example_shaped_dcgan_names_both_steps():
    report = run_probe(str(SCRIPTS / "dcgan_style.py"), checks=["gradient-flow"], steps=10, timeout=300).report
    assert "error" not in report, report.get("error")
    assert report["step"]["role"] == "discriminator" and report["step"]["partner"]["role"] == "generator"
    assert {(c["details"]["step"], c["status"]) for c in report["checks"]} == {("discriminator", "pass"),
                                                                              ("generator", "pass")}


def _capture_steps(script, steps: int):
    """The captured training steps ``1..steps`` of ``script`` (in process)."""
    caps = []

    def on_backward(cap):
        caps.append(cap)
        if len(caps) == steps:
            raise StopProbe()
        rec.resume(cap.training_step + 1, cap.tape)

    rec = Recorder(on_backward)
    rec.install()
    try:
        script()
    except StopProbe:
        pass
    finally:
        rec.uninstall()
    return caps


def test_a_frozen_teacher_is_no_gan_and_its_student_is_driven():
    torch.manual_seed(0)
    built = {}

    def script():
        teacher, student = nn.Linear(6, 3), nn.Linear(6, 3)  # the teacher is trained by no optimizer
        opt = torch.optim.SGD(student.parameters(), lr=0.1)
        built.update(teacher=teacher, student=student)
        x = torch.randn(16, 6)
        loss = nn.functional.mse_loss(student(x), teacher(x))
        loss.backward()
        opt.step()

    step = TapeStep(_capture_steps(script, 1)[0])
    assert step.models == [built["student"]] and step.other_models == [built["teacher"]]
    assert step.role is None


def test_one_optimizer_over_both_models_is_still_refused():
    torch.manual_seed(0)

    def script():
        g, d = nn.Linear(4, 4), nn.Linear(4, 1)
        opt = torch.optim.Adam(list(g.parameters()) + list(d.parameters()))
        d(g(torch.randn(8, 4))).mean().backward()
        opt.step()

    from torchsanity.probes.replay import CannotDrive

    with pytest.raises(CannotDrive, match="2 separately called models"):
        TapeStep(_capture_steps(script, 1)[0])
