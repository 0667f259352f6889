"""A tutorial-style script: an autograd warm-up on a scalar, then a small classifier trained with SGD. Only the
training loop is training; the step number is printed so a later step can be picked. The learning rate warms
up over 10 steps."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser(description="autograd demo, then training")
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--lr", type=float, default=0.05)
args = parser.parse_args()

# autograd refresher: d(x^2)/dx at x = 2 is 4
x = torch.tensor(2.0, requires_grad=True)
(x ** 2).backward()
print(f"dx = {x.grad.item():.1f}")

torch.manual_seed(0)
centres = torch.randn(4, 12) * 2.0
labels = torch.arange(256) % 4
features = centres[labels] + torch.randn(256, 12)
loader = DataLoader(TensorDataset(features, labels), batch_size=32, shuffle=True)

model = nn.Sequential(nn.Linear(12, 32), nn.Tanh(), nn.Linear(32, 4))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
warmup = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: min(1.0, (s + 1) / 10))  # 10-step linear warmup

step = 0
for epoch in range(args.epochs):
    for xb, yb in loader:
        step += 1
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        warmup.step()
        print(f"step {step} loss {loss.item():.4f}", flush=True)
