"""A healthy run: an MLP on Gaussian blobs, Adam, a step schedule per epoch, a validation pass after every epoch
(eval mode, no grad, the same criterion) and a progress line per epoch."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=5)
args = parser.parse_args()

torch.manual_seed(0)
centres = torch.randn(10, 20) * 2.0


def blobs(n):
    y = torch.arange(n) % 10
    return centres[y] + torch.randn(n, 20), y


x, y = blobs(3840)
mean, std = x.mean(0), x.std(0)
vx, vy = blobs(640)
loader = DataLoader(TensorDataset((x - mean) / std, y), batch_size=64, shuffle=True)
val_loader = DataLoader(TensorDataset((vx - mean) / std, vy), batch_size=128)

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

for epoch in range(args.epochs):
    model.train()
    total = 0.0
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        total += loss.item()
    scheduler.step()
    model.eval()
    with torch.no_grad():
        val = sum(criterion(model(xb), yb).item() * len(yb) for xb, yb in val_loader) / len(val_loader.dataset)
    print(f"epoch {epoch}: loss {total / len(loader):.4f} val {val:.4f}")
