"""Dying ReLUs: raw, unnormalised features (5x the unit scale) and SGD with a learning rate of 0.5 — within a few
dozen steps the second hidden layer's units stop firing for every input, and the loss stalls at chance."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(4096, 32) * 5.0
y = (x[:, :4].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(32, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
for step in range(300):
    idx = torch.randint(0, 4096, (64,))
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"final loss {loss.item():.4f}")
