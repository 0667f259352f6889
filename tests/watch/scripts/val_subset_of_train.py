"""A "validation" set that is a subset of the training data: the script of overfit_tiny.py (48 noisy samples, a wide
MLP, Adam, many epochs) but validating on 32 of its own 48 training samples. The model memorises them, so the
validation loss falls with the training loss: the run looks perfect and it is not overfitting by its curves (the
mistake is the validation set itself, which no curve shows)."""

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
w = torch.randn(64, 4)
x = torch.randn(48, 64)
y = (x @ w + 1.5 * torch.randn(48, 4)).argmax(1)  # noisy labels: little to learn, much to memorise
train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True)
val = DataLoader(TensorDataset(x[:32], y[:32]), batch_size=16)
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
        print(f"epoch {epoch}: train {loss.item():.4f} val {total / 32:.4f}")
