"""Project: a sibling module is parsed only when its text may define the function a call resolves to
(a module imported for its constants or classes costs no libcst parse), with the same findings."""

from __future__ import annotations

from pathlib import Path

from torchsanity.analyzers import Config, Project, analyze_source

TRAIN = """\
import torch

import settings
from helpers import step

model = torch.nn.Linear(2, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=settings.LR)
for x, y in loader:
    loss = model(x).sum()
    loss.backward()
    step(optimizer)
    settings.report(loss)
"""

HELPERS = "def step(opt):\n    opt.step()\n"  # never clears the gradients
SETTINGS = "LR = 0.1\nreport = print  # bound, never defined here\n"


def _check(tmp_path: Path, helpers: str) -> tuple[list[str], list[str]]:
    (tmp_path / "helpers.py").write_text(helpers)
    (tmp_path / "settings.py").write_text(SETTINGS)
    train = tmp_path / "train.py"
    train.write_text(TRAIN)
    project = Project(tmp_path)
    parsed: list[str] = []
    project.watch = lambda path, starting: parsed.append(path.name) if starting else None
    report = analyze_source(TRAIN, str(train), Config(select=["SAN101"]), project)
    return [f.code for f in report.findings], parsed


def test_the_helper_module_is_parsed_and_the_constants_module_is_not(tmp_path: Path):
    codes, parsed = _check(tmp_path, HELPERS)
    assert codes == ["SAN101"]  # the helper is read: it steps and never clears the gradients
    assert parsed == ["helpers.py"]


def test_a_module_without_the_def_is_not_parsed(tmp_path: Path):
    codes, parsed = _check(tmp_path, "step = print\n")
    assert codes == []  # an unknown callee that takes the optimizer may clear it: silent, as before
    assert parsed == []


def test_may_define_reads_every_spelling_of_def(tmp_path: Path):
    module = tmp_path / "mod.py"
    module.write_text("async def fetch():\n    pass\n\ndef \\\n    late():\n    pass\n\nname_only = 1\n")
    project = Project(tmp_path)
    assert project.may_define(module, "fetch")
    assert project.may_define(module, "late")
    assert not project.may_define(module, "name_only")
    assert project.may_define(tmp_path / "missing.py", "anything")  # unreadable: model_for decides
