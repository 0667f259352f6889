"""Character-level language models trained and sampled in one script: the bigram table and the MLP have
no dropout or batch-norm, so sampling them in training mode is fine; the transformer-ish model has dropout
and is sampled without eval() (annotated)."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(2147483647)


class Bigram(nn.Module):
    def __init__(self, vocab_size):
        super().__init__()
        self.logits = nn.Embedding(vocab_size, vocab_size)

    def forward(self, idx):
        return self.logits(idx)


class MLP(nn.Module):
    def __init__(self, vocab_size, block_size, n_embd=64, n_hidden=128):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.mlp = nn.Sequential(nn.Linear(block_size * n_embd, n_hidden), nn.Tanh(), nn.Linear(n_hidden, vocab_size))

    def forward(self, idx):
        return self.mlp(self.wte(idx).flatten(1))


class TinyAttention(nn.Module):
    def __init__(self, vocab_size, n_embd=64):
        super().__init__()
        self.wte = nn.Embedding(vocab_size, n_embd)
        self.attn = nn.MultiheadAttention(n_embd, 4, dropout=0.1, batch_first=True)
        self.head = nn.Linear(n_embd, vocab_size)

    def forward(self, idx):
        x = self.wte(idx)
        y, _ = self.attn(x, x, x)
        return self.head(y[:, -1])


def fit(model, batches, steps=1000):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(steps):
        x, y = batches[step % len(batches)]
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()


def make_batches(words, block_size):
    return [(torch.randint(0, 27, (32, block_size)), torch.randint(0, 27, (32,))) for _ in words]


words = open("names.txt").read().splitlines()
batches = make_batches(words, 3)
val_batches = make_batches(words[:100], 3)

bigram = Bigram(27)
fit(bigram, batches)
with torch.no_grad():
    for x, y in val_batches:
        print(bigram(x[:, -1]).argmax(-1))

mlp = MLP(27, 3)
fit(mlp, batches)
with torch.no_grad():
    for x, y in val_batches:
        print(mlp(x).argmax(-1))

attention = TinyAttention(27)
fit(attention, batches)
with torch.no_grad():
    for x, y in val_batches:  # expect: SAN201
        print(attention(x).argmax(-1))
