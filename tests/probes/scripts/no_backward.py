"""Builds a model and evaluates it, but never trains: there is no backward() to capture."""

import torch
from torch import nn

model = nn.Linear(4, 2)
with torch.no_grad():
    print(model(torch.randn(3, 4)).shape)
