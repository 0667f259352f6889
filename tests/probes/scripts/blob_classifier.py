"""A small MLP classifier on synthetic, learnable data: four classes of Gaussian blobs in 16 dimensions, fed by a
DataLoader. ``--shuffle-labels`` permutes the labels against the inputs once, when the dataset is built (a
classic data bug: inputs and labels sorted or shuffled separately), so nothing learnt on one batch transfers."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--shuffle-labels", action="store_true")
parser.add_argument("--batch-size", type=int, default=32)
args = parser.parse_args()

torch.manual_seed(0)
centres = torch.randn(4, 16) * 1.5
labels = torch.arange(1024) % 4
inputs = centres[labels] + torch.randn(1024, 16)
if args.shuffle_labels:
    labels = labels[torch.randperm(len(labels))]
loader = DataLoader(TensorDataset(inputs, labels), batch_size=args.batch_size, shuffle=True)

model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 4))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
