"""A cleanup block that raises while the probe stops the script: the checks already measured are kept."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(64, 8)
y = torch.arange(64) % 4
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

try:
    for step in range(10):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
finally:
    raise RuntimeError("could not upload the run's logs")
