"""A classifier whose every forward pass takes a third of a second, as a large model's does on a CPU (simulated
with a sleep, so that how long the probe's checks take does not depend on the machine): the probe's timeout is
reached before its budgeted checks can finish."""

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class SlowNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 4))

    def forward(self, x):
        time.sleep(0.33)
        return self.body(x)


torch.manual_seed(0)
x = torch.randn(256, 32)
y = torch.arange(256) % 4
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
model = SlowNet()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.CrossEntropyLoss()

for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}")
