"""Tabular regression in the shape of the usual house-price tutorials: standardised features, prices in dollars as
targets (mean about 180,000, std about 50,000), an MLP whose output layer starts near 0, MSE loss and Adam.
``--standardise`` trains on (price - mean) / std instead, as the tutorials recommend."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--standardise", action="store_true", help="train on standardised prices")
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

torch.manual_seed(0)
n = 512
area = torch.rand(n) * 200 + 50  # m²
rooms = torch.randint(1, 7, (n,)).float()
age = torch.rand(n) * 80
features = torch.stack([area, rooms, age], 1)
price = 60_000 + 900 * area + 8_000 * rooms - 400 * age + 10_000 * torch.randn(n)
x = (features - features.mean(0)) / features.std(0)
y = price.unsqueeze(1)
if args.standardise:
    y = (y - y.mean()) / y.std()

loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(3, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
loss_fn = nn.MSELoss()

for epoch in range(args.epochs):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.1f}")
