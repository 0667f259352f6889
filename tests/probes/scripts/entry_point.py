"""An explicit entry point for `--entry entry_point:build` (the fallback for scripts the probe cannot drive)."""

import torch
from torch import nn


def build():
    torch.manual_seed(0)
    centres = torch.randn(4, 8) * 2.0
    y = torch.arange(64) % 4
    x = centres[y] + torch.randn(64, 8)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
    return {
        "model": model,
        "batch": (x, y),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": lambda params: torch.optim.Adam(params, lr=1e-2),
    }
