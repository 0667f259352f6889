"""Asks for far more memory than any machine has while building the batch: reported as out of memory."""

import torch
from torch import nn

model = nn.Linear(4, 2)
x = torch.empty(2**47, dtype=torch.float32)  # 512 TiB
loss = model(x[:8].view(2, 4)).sum()
loss.backward()
