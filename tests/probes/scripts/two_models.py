"""A GAN-like step whose loss depends on two separately called models: the probe must say why it cannot drive it."""

import torch
from torch import nn

torch.manual_seed(0)
generator = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
discriminator = nn.Sequential(nn.Linear(4, 16), nn.ReLU(), nn.Linear(16, 1))
optimizer = torch.optim.Adam(list(generator.parameters()) + list(discriminator.parameters()), lr=1e-3)

for step in range(5):
    z = torch.randn(32, 8)
    optimizer.zero_grad()
    loss = nn.functional.binary_cross_entropy_with_logits(discriminator(generator(z)), torch.ones(32, 1))
    loss.backward()
    optimizer.step()
