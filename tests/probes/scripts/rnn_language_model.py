"""A character-level LSTM language model in the style of PyTorch's word_language_model example: the text is
batchified into columns, batches are (bptt, batch) — sequence first, nn.LSTM(batch_first=False) — the hidden
state is carried between steps (detached), and the decoder's output is flattened to (bptt * batch, vocab)."""

import argparse

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--bptt", type=int, default=12)
parser.add_argument("--batch-size", type=int, default=10)
args = parser.parse_args()

torch.manual_seed(0)
text = ("the quick brown fox jumps over the lazy dog while the cat sleeps by the warm fire " * 20).strip()
vocab = sorted(set(text))
ids = torch.tensor([vocab.index(ch) for ch in text])


def batchify(data, bsz):
    nbatch = data.size(0) // bsz
    return data[: nbatch * bsz].view(bsz, -1).t().contiguous()  # (steps, bsz): sequence first


def get_batch(source, i):
    seq_len = min(args.bptt, len(source) - 1 - i)
    return source[i:i + seq_len], source[i + 1:i + 1 + seq_len].reshape(-1)


class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp, nhid, nlayers):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)  # batch_first=False
        self.decoder = nn.Linear(nhid, ntoken)
        self.nlayers, self.nhid = nlayers, nhid

    def forward(self, input, hidden):
        emb = self.encoder(input)
        output, hidden = self.rnn(emb, hidden)
        decoded = self.decoder(output)
        return decoded.view(-1, decoded.size(-1)), hidden

    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))


def repackage_hidden(h):
    return tuple(v.detach() for v in h)


train_data = batchify(ids, args.batch_size)
model = RNNModel(len(vocab), 16, 32, 2)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
hidden = model.init_hidden(args.batch_size)
for epoch in range(2):
    for batch, i in enumerate(range(0, train_data.size(0) - 1, args.bptt)):
        data, targets = get_batch(train_data, i)
        hidden = repackage_hidden(hidden)
        optimizer.zero_grad()
        output, hidden = model(data, hidden)
        loss = criterion(output, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
        optimizer.step()
