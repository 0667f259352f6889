"""Two healthy character-level name models trained at a small learning rate (AdamW at 5e-4, a common default for
small language models), in the layout of a names generator: each name is one row starting with the start token 0,
its targets end with 0 and the padding is left out of the loss (ignore_index=-1).

--type bigram: the logits are a zero-initialised 27 x 27 table looked up by the current character. Adam moves each
entry by about the learning rate per step, so the fit of one batch falls slowly and in a straight line.
--type rnn: a hand-written Elman cell unrolled over time (batch first), whose fit is slow too. Neither is broken:
a probe must call them slow, never "cannot fit" or "nothing transferred"."""

import argparse

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--type", choices=["bigram", "rnn"], default="bigram")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--lr", type=float, default=5e-4)
parser.add_argument("--max-steps", type=int, default=100)
args = parser.parse_args()

NAMES = """olga pavel irina sergei natalia dmitri svetlana andrei tatiana mikhail yelena nikolai oksana boris galina
viktor ludmila yuri marina oleg vera igor nadia artem polina ilya daria roman alina kirill sofia maxim anastasia egor
ksenia denis valeria anton kristina fedor zlata timur alisa gleb yana stepan milana lev eva arseni vasilisa matvei
ulyana savva taisia platon varvara bogdan zoya ruslan larisa vadim inna semyon raisa filipp ekaterina arkadi lidia
german nina efim agata prokhor kira rodion margarita yaroslav elizaveta vsevolod angelina zakhar diana
trofim ada""".split()
chars = sorted(set("".join(NAMES)))
stoi = {c: i + 1 for i, c in enumerate(chars)}  # 0 starts and ends a name
vocab = 27
block = max(len(w) for w in NAMES) + 1


class Names(Dataset):
    def __len__(self):
        return len(NAMES)

    def __getitem__(self, i):
        ix = torch.tensor([stoi[c] for c in NAMES[i]], dtype=torch.long)
        x = torch.zeros(block, dtype=torch.long)
        y = torch.full((block,), -1, dtype=torch.long)
        x[1:1 + len(ix)] = ix
        y[:len(ix)] = ix
        y[len(ix)] = 0
        return x, y


class Bigram(nn.Module):
    def __init__(self, n):
        super().__init__()
        self.logits = nn.Parameter(torch.zeros((n, n)))

    def forward(self, idx, targets=None):
        logits = self.logits[idx]
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


class ElmanCell(nn.Module):
    def __init__(self, n_embd, n_hidden):
        super().__init__()
        self.xh_to_h = nn.Linear(n_embd + n_hidden, n_hidden)

    def forward(self, xt, hprev):
        return torch.tanh(self.xh_to_h(torch.cat([xt, hprev], dim=1)))


class CellRNN(nn.Module):
    def __init__(self, n, n_embd=32, n_hidden=32):
        super().__init__()
        self.start = nn.Parameter(torch.zeros(1, n_hidden))
        self.wte = nn.Embedding(n, n_embd)
        self.cell = ElmanCell(n_embd, n_hidden)
        self.lm_head = nn.Linear(n_hidden, n)

    def forward(self, idx, targets=None):
        b, t = idx.size()
        emb = self.wte(idx)
        h = self.start.expand((b, -1))
        hiddens = []
        for i in range(t):
            h = self.cell(emb[:, i, :], h)
            hiddens.append(h)
        logits = self.lm_head(torch.stack(hiddens, 1))
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1), ignore_index=-1)
        return logits, loss


torch.manual_seed(3407)
model = Bigram(vocab) if args.type == "bigram" else CellRNN(vocab)
optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01, betas=(0.9, 0.99), eps=1e-8)
loader = DataLoader(Names(), batch_size=args.batch_size, shuffle=True)
step = 0
while step < args.max_steps:
    for x, y in loader:
        logits, loss = model(x, y)
        model.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        if step % 20 == 0:
            print(f"step {step} | loss {loss.item():.4f}")
