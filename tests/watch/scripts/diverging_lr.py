"""A run that diverges: SGD trains well, then a schedule (a bad warm restart) raises the learning rate 400-fold
at step 120 and the loss blows up."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
centres = torch.randn(10, 20) * 2.0
y = torch.arange(3840) % 10
x = centres[y] + torch.randn(3840, 20)
x = (x - x.mean(0)) / x.std(0)
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
restart = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 if step < 119 else 400.0)

for epoch in range(3):
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        restart.step()
    print(f"epoch {epoch}: last loss {loss.item():.4f}")
