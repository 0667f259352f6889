"""A sequence-to-sequence LSTM encoder-decoder in the layout of the classic translation tutorials: sequence-first
tensors ([length, batch], no batch_first), batches padded by a collate_fn with pad_sequence, a decoder loop that
feeds the ground-truth token with probability teacher_forcing_ratio (drawn from Python's `random` inside forward),
outputs [target length, batch, vocabulary] whose first row stays zero, cross-entropy over outputs[1:] ignoring the
padding, and gradient clipping. The task is synthetic: the target is the source sequence reversed."""

import argparse
import random

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--epochs", type=int, default=1)
parser.add_argument("--teacher-forcing", type=float, default=0.5)
args = parser.parse_args()

PAD, SOS, EOS = 0, 1, 2
VOCAB = 13  # 3 specials + 10 digits
random.seed(1234)
torch.manual_seed(1234)


class Reverse(Dataset):
    def __init__(self, n=640):
        g = torch.Generator().manual_seed(0)
        lengths = torch.randint(3, 9, (n,), generator=g)
        self.items = [torch.randint(3, VOCAB, (int(n_),), generator=g) for n_ in lengths]

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x = self.items[i]
        wrap = lambda t: torch.cat([torch.tensor([SOS]), t, torch.tensor([EOS])])  # noqa: E731
        return wrap(x), wrap(x.flip(0))


def collate_fn(batch):
    src = nn.utils.rnn.pad_sequence([s for s, _ in batch], padding_value=PAD)
    trg = nn.utils.rnn.pad_sequence([t for _, t in batch], padding_value=PAD)
    return src, trg


class Encoder(nn.Module):
    def __init__(self, emb=32, hidden=64):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, emb)
        self.rnn = nn.LSTM(emb, hidden)

    def forward(self, src):
        _, (hidden, cell) = self.rnn(self.embedding(src))
        return hidden, cell


class Decoder(nn.Module):
    def __init__(self, emb=32, hidden=64):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, emb)
        self.rnn = nn.LSTM(emb, hidden)
        self.fc_out = nn.Linear(hidden, VOCAB)

    def forward(self, token, hidden, cell):
        output, (hidden, cell) = self.rnn(self.embedding(token.unsqueeze(0)), (hidden, cell))
        return self.fc_out(output.squeeze(0)), hidden, cell


class Seq2Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(), Decoder()

    def forward(self, src, trg, teacher_forcing_ratio):
        trg_len, batch_size = trg.shape
        outputs = torch.zeros(trg_len, batch_size, VOCAB)
        hidden, cell = self.encoder(src)
        token = trg[0, :]
        for t in range(1, trg_len):
            output, hidden, cell = self.decoder(token, hidden, cell)
            outputs[t] = output
            teacher_force = random.random() < teacher_forcing_ratio
            token = trg[t] if teacher_force else output.argmax(1)
        return outputs


model = Seq2Seq()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss(ignore_index=PAD)
loader = DataLoader(Reverse(), batch_size=args.batch_size, shuffle=True, collate_fn=collate_fn)
for epoch in range(args.epochs):
    model.train()
    for src, trg in loader:
        optimizer.zero_grad()
        output = model(src, trg, args.teacher_forcing)
        loss = criterion(output[1:].view(-1, VOCAB), trg[1:].view(-1))
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    print(f"epoch {epoch} loss {loss.item():.3f}")
