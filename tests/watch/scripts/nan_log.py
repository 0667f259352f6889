"""A NaN at step 50 inside the model: the head returns log-probabilities scaled by a confidence factor that the
training loop anneals linearly to 0 at step 50 — log(0 * p) is -inf, the NLL loss inf, the gradients NaN."""

import torch
from torch import nn


class ConfidenceHead(nn.Module):
    """log(confidence * softmax(logits)): a calibration term whose weight the loop anneals."""

    def __init__(self):
        super().__init__()
        self.confidence = 1.0

    def forward(self, logits):
        return torch.log(self.confidence * logits.softmax(-1))


torch.manual_seed(0)
x = torch.randn(512, 16)
y = (x[:, :4].sum(1) > 0).long()
model = nn.Sequential(nn.Linear(16, 32), nn.Tanh(), nn.Linear(32, 2), ConfidenceHead())
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

for step in range(1, 121):
    model[3].confidence = max(0.0, 1.0 - step / 50)  # reaches 0 at step 50
    idx = torch.randint(0, 512, (32,))
    loss = nn.functional.nll_loss(model(x[idx]), y[idx])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step % 20 == 0:
        print(f"step {step}: loss {loss.item():.4f}")
