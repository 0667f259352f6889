"""Contrastive self-supervised training in the pattern of SimCLR implementations: the same encoder embeds two
augmented views of a batch in two calls, and the training loop computes the normalised-temperature cross-entropy
over the 2B x 2B similarity matrix, masking its diagonal with torch.eye(2 * batch_size) built from the configured
batch size (so the loss only works for a whole batch: drop_last=True). Synthetic data: 16-dimensional points of 6
clusters, views made by noise and feature dropout. The model is per-sample; the loss compares samples on purpose."""

import argparse

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--batch_size", type=int, default=32)
parser.add_argument("--temperature", type=float, default=0.5)
parser.add_argument("--epochs", type=int, default=2)
args = parser.parse_args()
batch_size, temperature = args.batch_size, args.temperature


class Pairs(Dataset):
    def __init__(self, n=384):
        g = torch.Generator().manual_seed(1)
        centres = torch.randn(6, 16, generator=g) * 2
        self.x = centres[torch.arange(n) % 6] + 0.5 * torch.randn(n, 16, generator=g)
        self.y = torch.arange(n) % 6

    def __len__(self):
        return len(self.x)

    def view(self, x):
        return (x + 0.2 * torch.randn_like(x)) * (torch.rand_like(x) > 0.1)

    def __getitem__(self, i):
        return self.view(self.x[i]), self.view(self.x[i]), self.y[i]


class Encoder(nn.Module):
    def __init__(self, feature_dim=32):
        super().__init__()
        self.f = nn.Sequential(nn.Linear(16, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 64))
        self.g = nn.Sequential(nn.Linear(64, 64, bias=False), nn.BatchNorm1d(64), nn.ReLU(),
                               nn.Linear(64, feature_dim))

    def forward(self, x):
        feature = self.f(x)
        out = self.g(feature)
        return F.normalize(feature, dim=-1), F.normalize(out, dim=-1)


torch.manual_seed(0)
model = Encoder()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-6)
loader = DataLoader(Pairs(), batch_size=batch_size, shuffle=True, drop_last=True)
for epoch in range(args.epochs):
    model.train()
    for pos_1, pos_2, target in loader:
        feature_1, out_1 = model(pos_1)
        feature_2, out_2 = model(pos_2)
        out = torch.cat([out_1, out_2], dim=0)
        sim_matrix = torch.exp(torch.mm(out, out.t().contiguous()) / temperature)
        mask = (torch.ones_like(sim_matrix) - torch.eye(2 * batch_size, device=sim_matrix.device)).bool()
        sim_matrix = sim_matrix.masked_select(mask).view(2 * batch_size, -1)
        pos_sim = torch.exp(torch.sum(out_1 * out_2, dim=-1) / temperature)
        pos_sim = torch.cat([pos_sim, pos_sim], dim=0)
        loss = (-torch.log(pos_sim / sim_matrix.sum(dim=-1))).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch} loss {loss.item():.4f}")
