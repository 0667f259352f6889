"""A model whose output does not depend on its input (the input is multiplied away)."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10))

    def forward(self, x):
        return self.body(x * 0 + 1)  # the bug: a leftover debugging line


torch.manual_seed(0)
centres = torch.randn(10, 20) * 2.0
y = torch.arange(256) % 10
x = centres[y] + torch.randn(256, 20)
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

for xb, yb in loader:
    optimizer.zero_grad()
    loss = criterion(model(xb), yb)
    loss.backward()
    optimizer.step()
