"""Training a small retrieval-augmented language model on pre-computed neighbour chunks.

The training set is read from a JSON file of (input, neighbours, target) samples and batched without
shuffling, so every epoch walks the samples in file order, which groups the chunks of one document
together; the validation loader keeps its order on purpose. Pattern seen in public research code, where
the fix was to shuffle (later: a random sampler); written for the corpus.
"""

import json

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset


class NeighbourDataset(Dataset):
    def __init__(self, path):
        with open(path) as f:
            self.samples = json.load(f)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, idx):
        src, neighbours, tgt = self.samples[idx]
        return torch.tensor(src), torch.tensor(neighbours), torch.tensor(tgt)


class ChunkedLM(nn.Module):
    def __init__(self, n_tokens, d_model=128):
        super().__init__()
        self.embed = nn.Embedding(n_tokens, d_model)
        self.encoder = nn.GRU(d_model, d_model, batch_first=True)
        self.head = nn.Linear(d_model, n_tokens)

    def forward(self, src, neighbours):
        context = self.embed(neighbours).mean(dim=(1, 2)).unsqueeze(1)
        hidden, _ = self.encoder(self.embed(src) + context)
        return self.head(hidden)


def train(n_tokens=512, epochs=4):
    torch.manual_seed(7)
    train_ds = NeighbourDataset("retro_train.json")
    valid_ds = NeighbourDataset("retro_valid.json")
    train_dl = DataLoader(train_ds, batch_size=8)  # expect: SAN802
    valid_dl = DataLoader(valid_ds, batch_size=8)
    model = ChunkedLM(n_tokens)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4)
    loss_fn = nn.CrossEntropyLoss()
    for epoch in range(epochs):
        model.train()
        for src, neighbours, tgt in train_dl:
            logits = model(src, neighbours)
            loss = loss_fn(logits.reshape(-1, n_tokens), tgt.reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        total = 0.0
        with torch.no_grad():
            for src, neighbours, tgt in valid_dl:
                logits = model(src, neighbours)
                total += loss_fn(logits.reshape(-1, n_tokens), tgt.reshape(-1)).item()
        print(f"epoch {epoch}: valid loss {total / len(valid_dl):.3f}")


if __name__ == "__main__":
    train()
