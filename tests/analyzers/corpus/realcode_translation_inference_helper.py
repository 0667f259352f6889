"""Sequence-to-sequence translation tutorial: an encoder-decoder with dropout is trained, evaluated under
``torch.no_grad()``, and then a ``translate_sentence()`` helper decodes a few sentences. The helper switches
the model to eval mode itself and takes the argmax of one forward pass, but runs with autograd on: every
decoding step records a graph that nothing will ever backpropagate. ``display_attention()`` draws what the
helper returned and is not inference; ``score_batch()`` also calls ``eval()`` but its caller disables
gradients.

Pattern seen in public seq2seq tutorials (an inference helper whose later fix wrapped the model calls in
``torch.no_grad()``); this script is written for the corpus.
"""

import random

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

random.seed(0)
np.random.seed(0)
torch.manual_seed(0)

SRC_VOCAB, TRG_VOCAB, HIDDEN = 120, 140, 64
SOS, EOS = 1, 2


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.src_embedding = nn.Embedding(SRC_VOCAB, HIDDEN)
        self.trg_embedding = nn.Embedding(TRG_VOCAB, HIDDEN)
        self.encoder = nn.GRU(HIDDEN, HIDDEN)
        self.decoder = nn.GRU(HIDDEN, HIDDEN)
        self.dropout = nn.Dropout(0.3)
        self.out = nn.Linear(HIDDEN, TRG_VOCAB)

    def forward(self, src, trg):
        _, hidden = self.encoder(self.dropout(self.src_embedding(src)))
        output, _ = self.decoder(self.dropout(self.trg_embedding(trg)), hidden)
        return self.out(output)


def batches(n):
    for _ in range(n):
        src = torch.randint(3, SRC_VOCAB, (12, 16))
        trg = torch.randint(3, TRG_VOCAB, (14, 16))
        yield src, trg


model = Seq2Seq()
optimizer = optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()


def train_epoch(model, data):
    model.train()
    total = 0.0
    for src, trg in data:
        optimizer.zero_grad()
        logits = model(src, trg[:-1])
        loss = criterion(logits.reshape(-1, TRG_VOCAB), trg[1:].reshape(-1))
        loss.backward()
        optimizer.step()
        total += loss.item()
    return total


def evaluate(model, data):
    model.eval()
    total = 0.0
    with torch.no_grad():
        for src, trg in data:
            logits = model(src, trg[:-1])
            total += criterion(logits.reshape(-1, TRG_VOCAB), trg[1:].reshape(-1)).item()
    return total


for epoch in range(3):
    print(epoch, train_epoch(model, batches(20)), evaluate(model, batches(5)))


def translate_sentence(model, tokens, max_len=20):  # expect: SAN202
    model.eval()
    src = torch.LongTensor([SOS, *tokens, EOS]).unsqueeze(1)
    trg = torch.LongTensor([SOS] * max_len).unsqueeze(1)
    logits = model(src, trg)
    return logits.argmax(-1).squeeze(1).tolist()


def score_batch(model, src, trg):
    model.eval()
    return model(src, trg).log_softmax(-1).max(-1).values.sum().item()


def display_attention(tokens, translation):
    print(" ".join(map(str, tokens)), "->", " ".join(map(str, translation)))


for sentence in ([5, 17, 23, 9], [44, 8, 61]):
    display_attention(sentence, translate_sentence(model, sentence))

with torch.no_grad():
    print(score_batch(model, torch.randint(3, SRC_VOCAB, (12, 4)), torch.randint(3, TRG_VOCAB, (14, 4))))
