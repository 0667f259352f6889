"""Project: an editor's unsaved buffers replace their files, and a changed file invalidates exactly what
read it (the language server keeps one Project per workspace folder)."""

from __future__ import annotations

from pathlib import Path

from torchsanity.analyzers import Config, Project, analyze_source

MODEL = """\
import torch.nn as nn
import torch.nn.functional as F

from layers import head


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(10, 3)

    def forward(self, x):
        return F.softmax(self.fc(x), dim=1)
"""

LAYERS = "def head():\n    return 1\n"

TRAIN = """\
import torch.nn as nn

from model import Net

model = Net()
criterion = nn.CrossEntropyLoss()
for x, y in loader:
    loss = criterion(model(x), y)
"""

CONFIG = Config(select=["SAN601"])


def codes(text: str, path: Path, project: Project) -> list[str]:
    return [f.code for f in analyze_source(text, str(path), CONFIG, project).findings]


def test_an_unsaved_buffer_replaces_its_file(tmp_path: Path):
    (tmp_path / "model.py").write_text(MODEL.replace("F.softmax(self.fc(x), dim=1)", "self.fc(x)"), encoding="utf-8")
    project = Project(tmp_path)
    train = tmp_path / "train.py"
    assert codes(TRAIN, train, project) == []
    project.set_overlay({str(tmp_path / "model.py"): MODEL})
    assert codes(TRAIN, train, project) == ["SAN601"]
    project.set_overlay({})  # the buffer closed: the disk again
    assert codes(TRAIN, train, project) == []


def test_a_module_only_in_a_buffer_is_found(tmp_path: Path):
    project = Project(tmp_path)
    train = tmp_path / "train.py"
    assert codes(TRAIN, train, project) == []
    assert project.dependencies(train) == {(tmp_path / "model.py").resolve(): False,
                                           (tmp_path / "model" / "__init__.py").resolve(): False}
    project.set_overlay({str(tmp_path / "model.py"): MODEL})  # a new, unsaved file
    assert codes(TRAIN, train, project) == ["SAN601"]


def test_invalidation_follows_importers_and_spares_the_rest(tmp_path: Path):
    for name, text in (("model.py", MODEL), ("layers.py", LAYERS), ("other.py", LAYERS)):
        (tmp_path / name).write_text(text, encoding="utf-8")
    project = Project(tmp_path)
    model = project.model_for(tmp_path / "model.py")
    other = project.model_for(tmp_path / "other.py")
    assert model is not None and other is not None
    assert project.module_file("layers", str(tmp_path / "model.py")) is not None  # model.py looks for layers

    project.invalidate([tmp_path / "layers.py"])  # model.py looked for it: read again; other.py spared
    assert project.model_for(tmp_path / "model.py") is not model
    model = project.model_for(tmp_path / "model.py")
    assert project.model_for(tmp_path / "other.py") is other

    project.set_overlay({str(tmp_path / "other.py"): LAYERS})  # a buffer opened: read from it
    assert project.model_for(tmp_path / "other.py") is not other
    assert project.model_for(tmp_path / "model.py") is model
    other = project.model_for(tmp_path / "other.py")
    project.set_overlay({str(tmp_path / "other.py"): LAYERS})  # unchanged: nothing is read again
    assert project.model_for(tmp_path / "other.py") is other
    assert project.model_for(tmp_path / "model.py") is model
