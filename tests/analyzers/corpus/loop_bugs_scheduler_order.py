"""Pre-1.1 scheduler order, an ImageNet StepLR copied into a 20-epoch run, a cosine schedule whose
T_max does not match, and zero_grad() between backward() and step()."""

import argparse

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import CosineAnnealingLR, MultiStepLR, StepLR
from torch.utils.data import DataLoader

from data import get_dataset
from models import get_model

parser = argparse.ArgumentParser()
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--lr", type=float, default=0.1)
args = parser.parse_args()
torch.manual_seed(1)

train_loader = DataLoader(get_dataset("train"), batch_size=128, shuffle=True)
model = get_model()
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=5e-4)
scheduler = StepLR(optimizer, step_size=30, gamma=0.1)  # expect: SAN501

for epoch in range(args.epochs):
    scheduler.step()  # expect: SAN503
    model.train()
    for inputs, targets in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(inputs), targets)
        loss.backward()
        optimizer.step()

optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
milestones = MultiStepLR(optimizer, milestones=[30, 60, 90], gamma=0.1)  # expect: SAN501
cosine = CosineAnnealingLR(optimizer, T_max=200)  # expect: SAN501
for epoch in range(args.epochs):
    model.train()
    for inputs, targets in train_loader:
        outputs = model(inputs)
        loss = criterion(outputs, targets)
        loss.backward()
        optimizer.zero_grad()  # expect: SAN102
        optimizer.step()
    milestones.step()
    cosine.step()
