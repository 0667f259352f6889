"""A tiny GPT-style character model on a text corpus (minGPT's layout: token + position embeddings, masked
self-attention, weight-tied head), trained on next-character prediction from a DataLoader of (x, y) windows.
``--no-mask`` drops the causal mask (a classic bug: the model reads the character it must predict).
``--padded`` makes each window a word of its own length, names-style: the positions after its end are padded
(inputs 0, targets -1) and left out of the loss with ``ignore_index=-1``."""

import argparse
import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--no-mask", action="store_true", help="forget the causal mask")
parser.add_argument("--padded", action="store_true", help="variable-length words padded with ignored targets")
args = parser.parse_args()

torch.manual_seed(0)
text = "the quick brown fox jumps over the lazy dog. " * 40
chars = sorted(set(text))
stoi = {c: i for i, c in enumerate(chars)}
data = torch.tensor([stoi[c] for c in text], dtype=torch.long)
block, n_embd, n_head = 16, 32, 4


class CharWindows(Dataset):
    def __len__(self):
        return len(data) - block - 1

    def __getitem__(self, i):
        chunk = data[i:i + block + 1]
        x, y = chunk[:-1].clone(), chunk[1:].clone()
        if args.padded:
            end = 4 + i % 9  # this word's length
            x[end + 1:] = 0
            y[end:] = -1
        return x, y


class SelfAttention(nn.Module):
    def __init__(self, causal: bool):
        super().__init__()
        self.qkv = nn.Linear(n_embd, 3 * n_embd)
        self.proj = nn.Linear(n_embd, n_embd)
        self.drop = nn.Dropout(0.1)
        self.causal = causal
        self.register_buffer("mask", torch.tril(torch.ones(block, block)).view(1, 1, block, block))

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(n_embd, dim=2)
        q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
        att = q @ k.transpose(-2, -1) / math.sqrt(C // n_head)
        if self.causal:
            att = att.masked_fill(self.mask[:, :, :T, :T] == 0, float("-inf"))
        att = self.drop(F.softmax(att, dim=-1))
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))


class CharGPT(nn.Module):
    def __init__(self, vocab: int, causal: bool):
        super().__init__()
        self.tok = nn.Embedding(vocab, n_embd)
        self.pos = nn.Embedding(block, n_embd)
        self.ln1, self.ln2, self.ln_f = nn.LayerNorm(n_embd), nn.LayerNorm(n_embd), nn.LayerNorm(n_embd)
        self.attn = SelfAttention(causal)
        self.mlp = nn.Sequential(nn.Linear(n_embd, 4 * n_embd), nn.GELU(), nn.Linear(4 * n_embd, n_embd))
        self.head = nn.Linear(n_embd, vocab, bias=False)
        self.tok.weight = self.head.weight

    def forward(self, idx):
        T = idx.shape[1]
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))
        x = x + self.attn(self.ln1(x))
        x = x + self.mlp(self.ln2(x))
        return self.head(self.ln_f(x))


model = CharGPT(len(chars), causal=not args.no_mask)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
loader = DataLoader(CharWindows(), batch_size=16, shuffle=True)
for x, y in loader:
    logits = model(x)
    loss = F.cross_entropy(logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
