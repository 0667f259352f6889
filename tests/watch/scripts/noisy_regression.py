"""A noisy loss that does not diverge: regression on targets with as much noise as signal, two samples a batch —
each step's loss swings by an order of magnitude (one batch 0.03, the next 6), while the trend stays flat."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(4096, 8)
y = 0.5 * x[:, :1] + torch.randn(4096, 1)
model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
for step in range(400):
    idx = torch.randint(0, 4096, (2,))
    loss = nn.functional.mse_loss(model(x[idx]), y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"final loss {loss.item():.4f}")
