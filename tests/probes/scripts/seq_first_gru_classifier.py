"""A sequence classifier fed by a DataLoader of (batch, time, features) windows, transposed to time-first for a
GRU(batch_first=False); the last step's hidden output is classified."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
n, steps, features = 256, 12, 6
labels = torch.arange(n) % 3
t = torch.linspace(0, 6.28, steps)
waves = torch.stack([torch.sin(t * (1 + k)) for k in range(3)])  # one frequency per class
windows = waves[labels].unsqueeze(-1).repeat(1, 1, features) + 0.3 * torch.randn(n, steps, features)
loader = DataLoader(TensorDataset(windows, labels), batch_size=16, shuffle=True)


class Classifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru = nn.GRU(features, 24)
        self.head = nn.Linear(24, 3)

    def forward(self, x):  # x: (time, batch, features)
        out, _ = self.gru(x)
        return self.head(out[-1])


model = Classifier()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
for epoch in range(2):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(xb.transpose(0, 1)), yb)
        loss.backward()
        optimizer.step()
