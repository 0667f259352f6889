"""Skips training when a checkpoint says the run is already done: it ends before its first backward(), in the way
its first argument names (end, sys.exit, os._exit, os._exit3)."""

import os
import sys

import torch

how = sys.argv[1] if len(sys.argv) > 1 else "end"
model = torch.nn.Linear(8, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
print("checkpoint found: the run is already complete", flush=True)
if how == "sys.exit":
    sys.exit(0)
elif how == "os._exit":
    os._exit(0)
elif how == "os._exit3":
    os._exit(3)
if how != "end":
    for step in range(10):
        optimizer.zero_grad()
        model(torch.randn(4, 8)).sum().backward()
        optimizer.step()
