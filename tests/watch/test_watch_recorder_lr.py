"""The recorder's learning rates: a tensor learning rate (an optimizer built with ``lr=torch.tensor(...)``) is
recorded as a number. Off the CPU it is kept as a tensor until the flush (no synchronisation at every step); that
conversion is tested here on CPU tensors, which take the same path."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn
from torchsanity.probes.watch_hooks import WatchRecorder
from torchsanity.probes.watch_numbers import lr_floats


def test_tensor_learning_rates_become_numbers_at_the_flush_in_one_conversion():
    steps = [[0.1, None], [torch.tensor(0.2), 0.3], [torch.tensor(0.25, dtype=torch.float64), torch.tensor(0.5)]]
    assert lr_floats(steps) == [[0.1, None], [pytest.approx(0.2), 0.3], [0.25, 0.5]]
    plain = [[0.1], [0.2]]
    assert lr_floats(plain) is plain  # nothing to convert: no tensor op at all


def test_an_optimizer_with_a_tensor_learning_rate_is_recorded_with_its_value(tmp_path):
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    optimizer = torch.optim.Adam(model.parameters(), lr=torch.tensor(0.01))
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)
    path = tmp_path / "metrics.jsonl"
    with open(path, "w", encoding="utf-8") as out:
        recorder = WatchRecorder(out, every=2)
        recorder.install()
        try:
            for _ in range(5):
                optimizer.zero_grad()
                model(torch.randn(8, 4)).pow(2).mean().backward()
                optimizer.step()
                scheduler.step()
        finally:
            recorder.uninstall()
        recorder.finish()
    records = [json.loads(line) for line in path.read_text().splitlines()]
    lrs = [r["lr"] for r in records if r["kind"] == "step"]
    assert lrs == [[pytest.approx(x)] for x in (0.01, 0.01, 0.005, 0.005, 0.0025)]
    assert [r for r in records if r["kind"] == "scheduler_stepped"] == [
        {"kind": "scheduler_stepped", "type": "StepLR", "watched": True}]
