"""Every common, correct place to clear gradients: at the top of the loop, after the forward pass,
after step() with set_to_none, before the loop and after every step, through the model, by hand
(p.grad = None), and manual SGD updates with model.zero_grad()."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
X = torch.randn(1024, 20)
Y = (X.sum(dim=1) > 0).long()
loader = DataLoader(TensorDataset(X, Y), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)

# 1. at the top of the loop
for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()

# 2. after the forward pass
for xb, yb in loader:
    logits = model(xb)
    loss = criterion(logits, yb)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()

# 3. after step, with set_to_none
for xb, yb in loader:
    loss = criterion(model(xb), yb)
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)

# 4. once before the loop and after every step
optimizer.zero_grad()
for xb, yb in loader:
    criterion(model(xb), yb).backward()
    optimizer.step()
    optimizer.zero_grad()

# 5. through the model
for xb, yb in loader:
    model.zero_grad()
    criterion(model(xb), yb).backward()
    optimizer.step()

# 6. by hand
for xb, yb in loader:
    for p in model.parameters():
        p.grad = None
    criterion(model(xb), yb).backward()
    optimizer.step()


def clear(module):
    for p in module.parameters():
        if p.grad is not None:
            p.grad.detach_()
            p.grad.zero_()


# 7. through a helper of this module
for xb, yb in loader:
    clear(model)
    criterion(model(xb), yb).backward()
    optimizer.step()

# 8. manual SGD: no optimizer at all
lr = 0.1
weights = torch.randn(20, 2, requires_grad=True)
bias = torch.zeros(2, requires_grad=True)
for epoch in range(5):
    for xb, yb in loader:
        loss = F.cross_entropy(xb @ weights + bias, yb)
        loss.backward()
        with torch.no_grad():
            weights -= lr * weights.grad
            bias -= lr * bias.grad
            weights.grad.zero_()
            bias.grad.zero_()

for epoch in range(5):
    for xb, yb in loader:
        loss = criterion(model(xb), yb)
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad

# 9. a multi-task loss built with += and backpropagated once
heads = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
for epoch in range(5):
    for xb, yb in loader:
        optimizer.zero_grad()
        features = model(xb)
        loss = 0.0
        for head in heads:
            loss += criterion(head(features), yb)
        loss.backward()
        optimizer.step()
