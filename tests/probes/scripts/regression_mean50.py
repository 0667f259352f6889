"""Regression targets centred at 50 with the output bias at zero (initial-loss warns: init the bias to 50).

The step sits in `try/except Exception` on purpose: the probe's stop signal must get through it.
"""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(256, 8)
w = torch.randn(8, 1)
y = 50.0 + x @ w + 0.1 * torch.randn(256, 1)

model = nn.Sequential(nn.Linear(8, 32), nn.Tanh(), nn.Linear(32, 1))
nn.init.zeros_(model[2].bias)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
loss_fn = nn.MSELoss()

for step in range(200):
    idx = torch.randint(0, 256, (32,))
    try:
        optimizer.zero_grad()
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        optimizer.step()
    except Exception as exc:  # swallows everything a careless script would
        print("step failed:", exc)
print("finished all steps")
