"""Low-rank adapted layers: a frozen weight plus a trainable low-rank update (B starts at zero)."""

import torch
import torch.nn as nn


class Linear(nn.Module):
    def __init__(self, in_features, out_features, r, bias=True, alpha=None):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features), requires_grad=False)
        self.bias = nn.Parameter(torch.zeros(out_features), requires_grad=False) if bias else None
        self.lora_a = nn.Parameter(torch.empty(r, in_features))
        self.lora_b = nn.Parameter(torch.zeros(out_features, r))
        nn.init.kaiming_uniform_(self.lora_a, a=5 ** 0.5)
        nn.init.normal_(self.weight, std=0.02)
        self.scale = (alpha or r) / r

    def forward(self, x):
        out = nn.functional.linear(x, self.weight, self.bias)
        return out + (x @ self.lora_a.T @ self.lora_b.T) * self.scale


class Embedding(nn.Module):
    def __init__(self, num_embeddings, dim, r):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, dim), requires_grad=False)
        self.lora_a = nn.Parameter(torch.zeros(r, num_embeddings))
        self.lora_b = nn.Parameter(torch.empty(dim, r))
        nn.init.normal_(self.weight, std=0.02)
        nn.init.normal_(self.lora_b)

    def forward(self, ids):
        return nn.functional.embedding(ids, self.weight) + nn.functional.embedding(ids, self.lora_a.T) @ self.lora_b.T
