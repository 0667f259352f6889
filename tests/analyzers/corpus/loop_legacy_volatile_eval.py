"""A PyTorch 0.3-era translation script: evaluation turns autograd off with Variable(..., volatile=True), which
is what torch.no_grad() replaced. The evaluation that forgets it is reported (annotated)."""

import torch
import torch.nn.functional as F
from torch import optim
from torch.autograd import Variable


def evaluate(model, val_iter, vocab_size, pad):
    model.eval()
    total = 0.0
    for batch in val_iter:
        src = Variable(batch.src.cuda(), volatile=True)
        trg = Variable(batch.trg.cuda(), volatile=True)
        output = model(src, trg)
        loss = F.cross_entropy(output[1:].view(-1, vocab_size), trg[1:].contiguous().view(-1), ignore_index=pad)
        total += loss.data[0]
    return total / len(val_iter)


def score(model, test_iter):
    model.eval()
    hits = 0
    for batch in test_iter:  # expect: SAN202
        src = Variable(batch.src.cuda())
        output = model(src, Variable(batch.trg.cuda()))
        hits += (output.max(2)[1] == batch.trg.cuda()).sum().data[0]
    return hits


def train_epoch(model, optimizer, train_iter, vocab_size, pad):
    model.train()
    for batch in train_iter:
        src, trg = Variable(batch.src.cuda()), Variable(batch.trg.cuda())
        optimizer.zero_grad()
        output = model(src, trg)
        loss = F.cross_entropy(output[1:].view(-1, vocab_size), trg[1:].contiguous().view(-1), ignore_index=pad)
        loss.backward()
        optimizer.step()


def main(model, train_iter, val_iter, test_iter, vocab_size, pad):
    torch.manual_seed(1)
    optimizer = optim.Adam(model.parameters(), lr=1e-4)
    for epoch in range(20):
        train_epoch(model, optimizer, train_iter, vocab_size, pad)
        print(epoch, evaluate(model, val_iter, vocab_size, pad))
    print(score(model, test_iter))
