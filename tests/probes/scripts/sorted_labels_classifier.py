"""A binary classifier whose loader does not shuffle a data set sorted by label: each batch starts with a run of
one class, so the first samples of a batch all share a target."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
y = torch.cat([torch.zeros(24), torch.ones(24), torch.zeros(24), torch.ones(24)])
x = torch.randn(96, 10) + 1.5 * y[:, None]
loader = DataLoader(TensorDataset(x, y), batch_size=48)  # no shuffle: [0] * 24 + [1] * 24 in every batch
model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Linear(32, 1), nn.Flatten(0))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
criterion = nn.BCEWithLogitsLoss()

for xb, yb in loader:
    optimizer.zero_grad()
    loss = criterion(model(xb), yb)
    loss.backward()
    optimizer.step()
