"""Least-squares regression with LBFGS, which needs a closure: optimizer.step(closure)."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(128, 3)
y = x @ torch.tensor([[1.5], [-2.0], [0.5]]) + 0.3 + 0.05 * torch.randn(128, 1)
model = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))
criterion = nn.MSELoss()
optimizer = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=20, history_size=10)


def closure():
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    return loss


for i in range(10):
    optimizer.step(closure)
