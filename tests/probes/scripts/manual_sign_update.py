"""An update written by hand that is not plain SGD (sign of the gradient, as signSGD does): no learning rate can be
read off it as SGD's."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(64, 5)
y = x @ torch.randn(5, 1)
model = nn.Linear(5, 1)
for step in range(5):
    model.zero_grad()
    loss = nn.functional.mse_loss(model(x), y)
    loss.backward()
    with torch.no_grad():
        for p in model.parameters():
            p -= 0.01 * p.grad.sign()
