"""Overfitting: 48 noisy training samples in 64 dimensions, a wide MLP trained for many epochs with Adam, and a
validation loop after every epoch — the training loss goes to zero while the validation loss turns and rises."""

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
w = torch.randn(64, 4)


def sample(n):
    x = torch.randn(n, 64)
    logits = x @ w + 1.5 * torch.randn(n, 4)  # noisy labels: little to learn, much to memorise
    return x, logits.argmax(1)


train = DataLoader(TensorDataset(*sample(48)), batch_size=16, shuffle=True)
val = DataLoader(TensorDataset(*sample(512)), batch_size=256)
model = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 4))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

for epoch in range(60):
    model.train()
    for xb, yb in train:
        loss = F.cross_entropy(model(xb), yb)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        total = sum(F.cross_entropy(model(xb), yb, reduction="sum").item() for xb, yb in val)
    if epoch % 10 == 0:
        print(f"epoch {epoch}: train {loss.item():.4f} val {total / 512:.4f}")
