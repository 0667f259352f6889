"""Hand-written SGD (no torch.optim): gradients applied with p.data.add_ and zeroed by hand. The first backward is
training, even though no optimizer step follows it."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(64, 5)
y = x @ torch.randn(5, 1) + 0.1 * torch.randn(64, 1)
model = nn.Linear(5, 1)
lr = 0.1
for step in range(20):
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p.data.add_(p.grad, alpha=-lr)
            p.grad.zero_()
