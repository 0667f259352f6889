"""A learning rate too high for its batch: an MLP regressor on noisy targets (as much noise as signal), trained with
plain SGD at lr=0.05 on batches of 2. Each step jumps to fit its two samples, so the loss swings from near zero to
several times its level from batch to batch and its trend does not fall. The healthy twin (``--batch 64``, the same
learning rate) averages the noise away: a calm loss that falls to the noise floor.

Usage: lr_too_high_for_batch.py [--lr 0.05] [--batch 2] [--steps 500]"""

import argparse

import torch
from torch import nn
from torch.nn import functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--lr", type=float, default=0.05)
parser.add_argument("--batch", type=int, default=2)
parser.add_argument("--steps", type=int, default=500)
args = parser.parse_args()

torch.manual_seed(0)
x = torch.randn(4096, 16)
w = torch.randn(16, 1) / 4
y = torch.tanh(x @ w) * 2 + torch.randn(4096, 1)  # signal and noise of about the same size
model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
for step in range(args.steps):
    idx = torch.randint(0, 4096, (args.batch,))
    loss = F.mse_loss(model(x[idx]), y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 100 == 0:
        print(f"step {step}: loss {loss.item():.4f}")
