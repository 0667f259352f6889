"""A small, healthy regression run in epochs over a DataLoader; ``--pause`` sleeps after each step so that a run
can be watched (and stopped) while it goes; ``--report-env`` prints CUDA_VISIBLE_DEVICES as the script sees it."""

import argparse
import os
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=10)
parser.add_argument("--pause", type=float, default=0.0)
parser.add_argument("--report-env", action="store_true")
args = parser.parse_args()
if args.report_env:
    print(f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '<unset>')}", flush=True)

torch.manual_seed(0)
x = torch.randn(640, 8)
y = x @ torch.linspace(-1.0, 1.0, 8).unsqueeze(1) + 0.1 * torch.randn(640, 1)
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)  # 20 steps per epoch
model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.MSELoss()

for epoch in range(args.epochs):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        if args.pause:
            time.sleep(args.pause)
    print(f"epoch {epoch}: loss {loss.item():.4f}", flush=True)
