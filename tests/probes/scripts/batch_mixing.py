"""A `view(features, batch).t()` where `view(batch, features)` was meant: samples leak into each other."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 3, padding=1)
        self.fc = nn.Linear(4 * 16, 10)

    def forward(self, x):
        b = x.shape[0]
        h = torch.relu(self.conv(x.unsqueeze(1)))  # (b, 4, 16)
        h = h.view(4 * 16, b).t()  # the bug: mixes the batch; should be h.view(b, 4 * 16)
        return self.fc(h)


torch.manual_seed(0)
x = torch.randn(256, 16)
y = torch.arange(256) % 10
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
model = Net()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

for xb, yb in loader:
    optimizer.zero_grad()
    loss = criterion(model(xb), yb)
    loss.backward()
    optimizer.step()
