"""A small tabular classifier in the shape of the usual Iris / wine tutorials: 4 standardised features, 3 classes,
an MLP trained with Adam at a learning rate of a few 1e-2 — Adam's first updates move each weight by about lr, a
large fraction of a small layer's weights, and then settle. ``--head-std S`` initialises the output layer from
N(0, S) (a near-zero head, as "init the last layer small" advises), so its weights are tiny next to their updates."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=5e-2)
parser.add_argument("--head-std", type=float, default=None)
parser.add_argument("--epochs", type=int, default=50)
args = parser.parse_args()

torch.manual_seed(0)
n = 150
species = torch.arange(n) % 3
centres = torch.tensor([[5.0, 3.4, 1.5, 0.2], [5.9, 2.8, 4.3, 1.3], [6.6, 3.0, 5.6, 2.0]])
features = centres[species] + 0.35 * torch.randn(n, 4)
features = (features - features.mean(0)) / features.std(0)

model = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 3))
if args.head_std is not None:
    nn.init.normal_(model[2].weight, std=args.head_std)
    nn.init.zeros_(model[2].bias)
optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
loss_fn = nn.CrossEntropyLoss()
loader = DataLoader(TensorDataset(features, species), batch_size=32, shuffle=True)

for epoch in range(args.epochs):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = loss_fn(model(xb), yb)
        loss.backward()
        optimizer.step()
print(f"final loss {loss.item():.3f}")
