"""Where the editor puts a watch verdict: the optimizer's `lr=`, the loss computation, the layer a verdict names,
the DataLoader; nowhere when the place cannot be told for sure."""

from __future__ import annotations

from torchsanity.server.watch_locate import ScriptIndex, locate

SCRIPT = '''import torch
from torch import nn
from torch.utils.data import DataLoader


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.Conv2d(8, 16, 3))
        self.head = nn.Linear(16, 10)  # the classifier

    def forward(self, x):
        return self.head(self.features(x).mean((2, 3)))


model = Net()
loader = DataLoader(data, batch_size=64, num_workers=0)
optimizer = torch.optim.SGD(model.parameters(), momentum=0.9, lr=0.1)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)
criterion = nn.CrossEntropyLoss()
for x, y in loader:
    optimizer.zero_grad()
    out = model(x)
    loss = criterion(out, y)
    loss.backward()
    optimizer.step()
'''


def _at(place, source=SCRIPT) -> str:
    line = source.splitlines()[place.line - 1]
    return line[place.start:place.end]


def test_each_verdict_on_the_line_it_concerns():
    index = ScriptIndex(SCRIPT)
    divergence = locate(index, {"id": "divergence", "step": 40}, "SGD")
    assert (divergence.what, _at(divergence)) == ("lr", "lr=0.1")
    assert _at(locate(index, {"id": "plateau"}, "SGD")) == "lr=0.1"
    loss = locate(index, {"id": "non-finite"}, "SGD")
    assert (loss.what, _at(loss)) == ("loss", "criterion(out, y)")
    assert _at(locate(index, {"id": "overfitting"}, "SGD")) == "criterion(out, y)"
    # a parameter of a Sequential item: that item's argument; a named submodule: its construction
    conv = locate(index, {"id": "vanishing-gradients", "layer": "features.0.weight"}, "SGD")
    assert (conv.what, _at(conv)) == ("layer", "nn.Conv2d(3, 8, 3)")
    assert _at(locate(index, {"id": "update-ratio-high", "layer": "head.weight"}, "SGD")) == "nn.Linear(16, 10)"
    # the recorder names the module (not a parameter) of a non-finite output
    assert _at(locate(index, {"id": "non-finite", "module": "features.2"}, "SGD")) == "nn.Conv2d(8, 16, 3)"
    assert _at(locate(index, {"id": "input-bound"}, "SGD")) == "DataLoader(data, batch_size=64, num_workers=0)"
    schedule = locate(index, {"id": "lr-schedule-never-changes"}, "SGD")
    assert (schedule.what, _at(schedule)) == ("scheduler", "torch.optim.lr_scheduler.StepLR(optimizer, step_size=30)")


def test_no_place_when_it_cannot_be_told_for_sure():
    two = SCRIPT.replace("criterion = nn.CrossEntropyLoss()",
                         "criterion = nn.CrossEntropyLoss()\nprobe_opt = torch.optim.SGD(model.head.parameters())")
    index = ScriptIndex(two)
    assert locate(index, {"id": "divergence"}, "SGD") is None  # two SGD optimizers: which one?
    assert locate(index, {"id": "divergence"}, "Adam") is None  # not in this file
    assert locate(index, {"id": "divergence"}, None) is None
    assert locate(index, {"id": "vanishing-gradients", "layer": "encoder.blocks.weight"}, "SGD") is None
    assert locate(index, {"id": "something-new"}, "SGD") is None
    # an optimizer without lr=: its construction
    bare = SCRIPT.replace(", momentum=0.9, lr=0.1", "")
    place = locate(ScriptIndex(bare), {"id": "divergence"}, "SGD")
    assert (place.what, _at(place, bare)) == ("optimizer", "torch.optim.SGD(model.parameters())")


def test_columns_count_code_points_not_bytes():
    source = "import torch\nopt = torch.optim.Adam(params, betas=(0.9, 0.999), eps=1e-8, lr=3e-4)  # « Adam »\n"
    text = "émoji = 'é'; opt = torch.optim.Adam(p, lr=1.0)\n"
    place = locate(ScriptIndex(text), {"id": "divergence"}, "Adam")
    assert _at(place, text) == "lr=1.0"
    assert _at(locate(ScriptIndex(source), {"id": "divergence"}, "Adam"), source) == "lr=3e-4"
