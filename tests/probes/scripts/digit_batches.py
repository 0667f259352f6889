"""A classifier on 32-sample batches (10 classes, or --classes). By default the labels are drawn uniformly, so each
batch shows the ordinary sampling noise of 32 draws; with --skewed, 80 % of the samples are class 0."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--skewed", action="store_true")
parser.add_argument("--classes", type=int, default=10)
args = parser.parse_args()

torch.manual_seed(3)
n = 320
if args.skewed:
    y = torch.where(torch.arange(n) % 5 == 0, torch.arange(n) % (args.classes - 1) + 1,
                    torch.zeros(n, dtype=torch.long))
else:
    y = torch.randint(0, args.classes, (n,))
x = torch.randn(args.classes, 20)[y] + torch.randn(n, 20)
loader = DataLoader(TensorDataset(x, y), batch_size=32)
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, args.classes))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = nn.CrossEntropyLoss()

for xb, yb in loader:
    optimizer.zero_grad()
    loss = criterion(model(xb), yb)
    loss.backward()
    optimizer.step()
