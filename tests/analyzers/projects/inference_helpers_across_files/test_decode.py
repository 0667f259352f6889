"""Tests of the decoding helpers: pytest calls them; a test runs the model in eval mode to check shapes."""

import torch
import torch.nn as nn


class Echo(nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(100, 8)
        self.out = nn.Linear(8, 100)

    def forward(self, src, ys):
        return self.out(self.embed(ys))


def test_echo_logits_shape():
    model = Echo()
    model.eval()
    out = model(torch.randint(3, 100, (2, 5)), torch.ones(2, 3, dtype=torch.long))
    assert out.shape == (2, 3, 100)
