"""A training script that takes its time before the first step (the e2e test cancels its probe)."""

import time

import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Linear(8, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
criterion = nn.CrossEntropyLoss()

time.sleep(120)  # "loading the data set"

x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
for step in range(100):
    optimizer.zero_grad()
    loss = criterion(model(x), y)
    loss.backward()
    optimizer.step()
