"""An entry point (`--entry entry_time_first:build`) whose model takes time-first input: a GRU(batch_first=False)
classifier fed (time, batch, features) windows; the labels are per sample. Only `--batch-dim 1` says where the
16 samples are (dimension 0 holds the 12 time steps)."""

import torch
from torch import nn


class Classifier(nn.Module):
    def __init__(self, features: int):
        super().__init__()
        self.gru = nn.GRU(features, 24)
        self.head = nn.Linear(24, 3)

    def forward(self, x):  # x: (time, batch, features)
        out, _ = self.gru(x)
        return self.head(out[-1])


def build():
    torch.manual_seed(0)
    n, steps, features = 16, 12, 6
    labels = torch.arange(n) % 3
    t = torch.linspace(0, 6.28, steps)
    waves = torch.stack([torch.sin(t * (1 + k)) for k in range(3)])  # one frequency per class
    windows = waves[labels].unsqueeze(-1).repeat(1, 1, features) + 0.3 * torch.randn(n, steps, features)
    return {
        "model": Classifier(features),
        "batch": (windows.transpose(0, 1).contiguous(), labels),
        "loss_fn": nn.CrossEntropyLoss(),
        "optimizer": lambda params: torch.optim.Adam(params, lr=1e-2),
    }
