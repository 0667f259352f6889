"""A tabular regression read from a CSV-like table in which one reading is missing (NaN), as raw sensor or survey
data often is, and nobody filled it in: the first batch holds the NaN, so the very first loss is NaN."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
rows = torch.randn(200, 6)
rows[3, 2] = float("nan")  # the missing reading
target = rows.nan_to_num().sum(1, keepdim=True) * 0.5 + 0.1 * torch.randn(200, 1)

model = nn.Sequential(nn.Linear(6, 32), nn.ReLU(), nn.Linear(32, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loader = DataLoader(TensorDataset(rows, target), batch_size=16, shuffle=False)
for epoch in range(5):
    for x, y in loader:
        optimizer.zero_grad()
        loss = nn.functional.mse_loss(model(x), y)
        loss.backward()
        optimizer.step()
