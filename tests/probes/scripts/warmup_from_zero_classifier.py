"""A classifier trained with a learning-rate warmup written by hand, in the pattern of self-supervised recipes
(Barlow Twins, SimSiam): the optimizer is built with lr=0 and every step writes
``base * step / warmup`` into its param groups (0 at the first step), then a cosine decay. No scheduler, so there is
no ``initial_lr`` to read the working rate from. Synthetic data: 16-dimensional points of 6 overlapping Gaussian
clusters."""

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=3)
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--warmup-steps", type=int, default=20)
parser.add_argument("--base-lr", type=float, default=0.05)
args = parser.parse_args()

torch.manual_seed(0)
centres = torch.randn(6, 16) * 0.5
labels = torch.arange(1024) % 6
points = centres[labels] + torch.randn(1024, 16)
loader = DataLoader(TensorDataset(points, labels), batch_size=args.batch_size, shuffle=True, drop_last=True)

model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 6))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.0, momentum=0.9, weight_decay=1e-4)
total = args.epochs * len(loader)


def learning_rate(step):
    if step < args.warmup_steps:
        return args.base_lr * step / args.warmup_steps
    progress = (step - args.warmup_steps) / max(1, total - args.warmup_steps)
    return args.base_lr * 0.5 * (1 + math.cos(math.pi * progress))


step = 0
for epoch in range(args.epochs):
    model.train()
    for x, y in loader:
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step)
        loss = criterion(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    print(f"epoch {epoch} loss {loss.item():.3f} lr {optimizer.param_groups[0]['lr']:.4f}")
