"""The script raises before its first backward(): its own exception and traceback must be reported."""

import torch
from torch import nn


def load_labels():
    raise ValueError("labels.csv has 3 columns, expected 2")


model = nn.Linear(4, 2)
x = torch.randn(8, 4)
y = load_labels()
