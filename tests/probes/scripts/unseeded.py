"""No seed anywhere: two runs start from different weights and data (determinism fails)."""

import torch
from torch import nn

centres = torch.randn(4, 8) * 2.0
y = torch.arange(64) % 4
x = centres[y] + torch.randn(64, 8)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

for step in range(10):
    optimizer.zero_grad()
    loss = nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
