"""Vanishing gradients: ten sigmoid layers with the default initialisation and plain SGD; the first layers get
almost no gradient and the loss stays where it started."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(1024, 32)
y = (x[:, 0] > 0).long()
layers = [nn.Linear(32, 32), nn.Sigmoid()]
for _ in range(9):
    layers += [nn.Linear(32, 32), nn.Sigmoid()]
model = nn.Sequential(*layers, nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.01)

for step in range(250):
    idx = torch.randint(0, 1024, (64,))
    loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(f"final loss {loss.item():.4f}")
