"""A translation tutorial exported from a notebook: cells run top to bottom, helpers are defined as the
story goes, and the epoch loop calls them. Nothing seeds torch (nor Python's random, which decides
teacher forcing), so two runs of the notebook train different models. The early drafts of public
tutorial notebooks looked like this until a seeding cell was added; written for the corpus.
"""

import math
import random
import time

import torch
import torch.nn as nn
import torch.optim as optim

device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class Encoder(nn.Module):
    def __init__(self, input_dim, emb_dim, hid_dim, dropout):
        super().__init__()
        self.embedding = nn.Embedding(input_dim, emb_dim)
        self.rnn = nn.LSTM(emb_dim, hid_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, src):
        outputs, (hidden, cell) = self.rnn(self.dropout(self.embedding(src)))
        return hidden, cell


class Decoder(nn.Module):
    def __init__(self, output_dim, emb_dim, hid_dim, dropout):
        super().__init__()
        self.output_dim = output_dim
        self.embedding = nn.Embedding(output_dim, emb_dim)
        self.rnn = nn.LSTM(emb_dim, hid_dim)
        self.fc_out = nn.Linear(hid_dim, output_dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, token, hidden, cell):
        embedded = self.dropout(self.embedding(token.unsqueeze(0)))
        output, (hidden, cell) = self.rnn(embedded, (hidden, cell))
        return self.fc_out(output.squeeze(0)), hidden, cell


class Seq2Seq(nn.Module):
    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, src, trg, teacher_forcing_ratio=0.5):
        trg_len, batch_size = trg.shape
        outputs = torch.zeros(trg_len, batch_size, self.decoder.output_dim, device=src.device)
        hidden, cell = self.encoder(src)
        token = trg[0, :]
        for t in range(1, trg_len):
            output, hidden, cell = self.decoder(token, hidden, cell)
            outputs[t] = output
            teacher_force = random.random() < teacher_forcing_ratio
            token = trg[t] if teacher_force else output.argmax(1)
        return outputs


def make_batches(n_batches, src_vocab, trg_vocab, length=12, batch_size=32):
    return [(torch.randint(src_vocab, (length, batch_size)), torch.randint(trg_vocab, (length, batch_size)))
            for _ in range(n_batches)]


SRC_VOCAB, TRG_VOCAB = 800, 900
train_iterator = make_batches(50, SRC_VOCAB, TRG_VOCAB)
valid_iterator = make_batches(5, SRC_VOCAB, TRG_VOCAB)

model = Seq2Seq(Encoder(SRC_VOCAB, 64, 128, 0.5), Decoder(TRG_VOCAB, 64, 128, 0.5)).to(device)
optimizer = optim.Adam(model.parameters())
criterion = nn.CrossEntropyLoss(ignore_index=1)


def train(model, iterator, optimizer, criterion, clip):
    model.train()
    epoch_loss = 0
    for src, trg in iterator:
        src, trg = src.to(device), trg.to(device)
        optimizer.zero_grad()
        output = model(src, trg)
        loss = criterion(output[1:].view(-1, output.shape[-1]), trg[1:].reshape(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        optimizer.step()
        epoch_loss += loss.item()
    return epoch_loss / len(iterator)


def evaluate(model, iterator, criterion):
    model.eval()
    epoch_loss = 0
    with torch.no_grad():
        for src, trg in iterator:
            src, trg = src.to(device), trg.to(device)
            output = model(src, trg, 0)
            loss = criterion(output[1:].view(-1, output.shape[-1]), trg[1:].reshape(-1))
            epoch_loss += loss.item()
    return epoch_loss / len(iterator)


N_EPOCHS = 10
best_valid_loss = float("inf")
for epoch in range(N_EPOCHS):
    start = time.time()
    train_loss = train(model, train_iterator, optimizer, criterion, 1.0)  # expect: SAN401
    valid_loss = evaluate(model, valid_iterator, criterion)
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
        torch.save(model.state_dict(), "tut1-model.pt")
    print(f"Epoch {epoch + 1:02} | {time.time() - start:.0f}s | train PPL {math.exp(train_loss):7.3f} "
          f"| valid PPL {math.exp(valid_loss):7.3f}")
