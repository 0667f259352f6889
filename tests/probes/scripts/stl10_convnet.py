"""An STL-10-size image classifier on CPU (96×96 RGB, 10 classes) in the shape of the usual "train a CNN"
tutorials: three conv / BatchNorm / ReLU / max-pool stages of 64-128-256 channels, a linear head, SGD with momentum.
Random tensors stand in for the image folder. Each training step takes long enough on a CPU for the probe's time
budgets to matter."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--epochs", type=int, default=10)
args = parser.parse_args()

torch.manual_seed(0)
labels = torch.arange(256) % 10
images = torch.randn(10, 3, 96, 96)[labels] * 0.5 + torch.randn(256, 3, 96, 96)


def stage(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.MaxPool2d(2))


model = nn.Sequential(stage(3, 64), stage(64, 128), stage(128, 256), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                      nn.Linear(256, 10))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
criterion = nn.CrossEntropyLoss()
loader = DataLoader(TensorDataset(images, labels), batch_size=args.batch_size, shuffle=True)

for epoch in range(args.epochs):
    for x, y in loader:
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.3f}")
