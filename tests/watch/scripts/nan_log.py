"""A NaN at step 50: an entropy-style bonus weighted by a factor that decays linearly to 0 at step 50, inside
a log — log(0) is -inf, and the gradients become NaN from there on."""

import torch
from torch import nn

torch.manual_seed(0)
x = torch.randn(512, 16)
y = (x[:, :4].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for step in range(1, 121):
    idx = torch.randint(0, 512, (32,))
    logits = model(x[idx])
    probs = logits.softmax(-1)
    weight = max(0.0, 1.0 - step / 50)  # reaches 0 at step 50
    loss = nn.functional.cross_entropy(logits, y[idx]) - 0.01 * torch.log(weight * probs.max(-1).values).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 20 == 0:
        print(f"step {step}: loss {loss.item():.4f}")
