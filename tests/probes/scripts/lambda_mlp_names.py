"""A character-level name model in the layout of makemore's transformer (karpathy/makemore, makemore.py, read for
reference only): each block keeps its MLP's forward as a lambda over the block's own modules
(``self.mlpf = lambda x: m.c_proj(m.act(m.c_fc(x)))``), names are padded with input 0 and target -1
(``ignore_index=-1``), AdamW with weight decay, a DataLoader of padded names.

A deep copy of this model keeps the lambdas bound to the original's modules: a copy would run (and train) the
original MLPs, and their parameters in the copy would get no gradient. Healthy: every parameter gets a gradient.
``--steps N`` trains N steps; ``--print-state`` prints a hash of the parameters, the optimizer's state and the
random generators at the end (for the test that the probe gives the script its state back exactly)."""

import argparse
import hashlib
import math
import random

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--steps", type=int, default=200)
parser.add_argument("--print-state", action="store_true")
args = parser.parse_args()

torch.manual_seed(3)
random.seed(3)
np.random.seed(3)
syllables = ["an", "el", "ia", "jo", "ma", "ri", "ka", "le", "na", "to", "sa", "mi", "de", "ly", "ra"]
names = ["".join(random.choice(syllables) for _ in range(random.randint(1, 4))) for _ in range(600)]
chars = sorted(set("".join(names)))
stoi = {c: i + 1 for i, c in enumerate(chars)}  # 0 is the start / stop token
vocab, block = len(chars) + 1, max(len(w) for w in names) + 1
n_embd, n_head, n_layer = 32, 4, 2


class Names(Dataset):
    def __len__(self):
        return len(names)

    def __getitem__(self, i):
        ix = torch.tensor([stoi[c] for c in names[i]], dtype=torch.long)
        x = torch.zeros(block, dtype=torch.long)
        y = torch.zeros(block, dtype=torch.long)
        x[1:1 + len(ix)] = ix
        y[:len(ix)] = ix
        y[len(ix) + 1:] = -1  # no loss at the padding
        return x, y


class CausalSelfAttention(nn.Module):
    def __init__(self):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.register_buffer("bias", torch.tril(torch.ones(block, block)).view(1, 1, block, block))

    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(n_embd, dim=2)
        q, k, v = (t.view(B, T, n_head, C // n_head).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float("-inf")), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd)
        self.attn = CausalSelfAttention()
        self.ln_2 = nn.LayerNorm(n_embd)
        self.mlp = nn.ModuleDict(dict(c_fc=nn.Linear(n_embd, 4 * n_embd), c_proj=nn.Linear(4 * n_embd, n_embd),
                                      act=nn.GELU()))
        m = self.mlp
        self.mlpf = lambda x: m.c_proj(m.act(m.c_fc(x)))  # the MLP's forward, bound to this block's modules

    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlpf(self.ln_2(x))


class Transformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.transformer = nn.ModuleDict(dict(wte=nn.Embedding(vocab, n_embd), wpe=nn.Embedding(block, n_embd),
                                              h=nn.ModuleList([Block() for _ in range(n_layer)]),
                                              ln_f=nn.LayerNorm(n_embd)))
        self.lm_head = nn.Linear(n_embd, vocab, bias=False)

    def forward(self, idx, targets=None):
        t = idx.size(1)
        pos = torch.arange(0, t, dtype=torch.long, device=idx.device).unsqueeze(0)
        x = self.transformer.wte(idx) + self.transformer.wpe(pos)
        for blk in self.transformer.h:
            x = blk(x)
        logits = self.lm_head(self.transformer.ln_f(x))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


model = Transformer()
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-4, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
loader = DataLoader(Names(), batch_size=32, shuffle=True)

step = 0
while step < args.steps:
    for x, y in loader:
        logits, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step >= args.steps:
            break

if args.print_state:
    h = hashlib.sha256()
    for name, p in model.state_dict().items():
        h.update(name.encode() + p.numpy().tobytes())
    for entry in optimizer.state_dict()["state"].values():
        for value in entry.values():
            h.update(value.numpy().tobytes() if torch.is_tensor(value) else repr(value).encode())
    h.update(repr(optimizer.state_dict()["param_groups"]).encode())
    h.update(torch.get_rng_state().numpy().tobytes() + repr(random.getstate()).encode())
    h.update(np.random.get_state()[1].tobytes())
    print("STATE", step, h.hexdigest())
