"""Self-supervised training in the pattern of redundancy-reduction methods (Barlow Twins): the model takes two
augmented views of a batch and returns the loss itself — the cross-correlation of the two batch-normalised
embeddings, computed over the batch, pushed towards the identity. It compares samples on purpose. The optimizer is
a hand-written layer-wise trust-ratio SGD (LARS-style, a torch.optim.Optimizer subclass) whose learning rate is
set by hand each step with a warmup that starts at 0. Synthetic data: 8-dimensional points of 4 clusters."""

import argparse
import math

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--batch-size", type=int, default=64)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--lambd", type=float, default=0.005)
args = parser.parse_args()


class Views(Dataset):
    def __init__(self, n=512):
        g = torch.Generator().manual_seed(0)
        centres = torch.randn(4, 8, generator=g) * 3
        self.x = centres[torch.arange(n) % 4] + torch.randn(n, 8, generator=g)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        x = self.x[i]
        return x + 0.3 * torch.randn(8), x * (torch.rand(8) > 0.2)  # noise, and masking of a fifth of the features


class TrustRatioSGD(torch.optim.Optimizer):
    def __init__(self, params, lr, momentum=0.9, eta=0.02, weight_decay=1e-6):
        super().__init__(params, dict(lr=lr, momentum=momentum, eta=eta, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                d = p.grad.add(p, alpha=group["weight_decay"])
                w_norm, d_norm = p.norm(), d.norm()
                if p.ndim > 1 and w_norm > 0 and d_norm > 0:
                    d = d * (group["eta"] * w_norm / d_norm)
                buf = self.state[p].setdefault("momentum_buffer", torch.zeros_like(p))
                buf.mul_(group["momentum"]).add_(d)
                p.add_(buf, alpha=-group["lr"])


class RedundancyReduction(nn.Module):
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd
        self.backbone = nn.Sequential(nn.Linear(8, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU())
        self.projector = nn.Sequential(nn.Linear(64, 128, bias=False), nn.BatchNorm1d(128), nn.ReLU(),
                                       nn.Linear(128, 128, bias=False))
        self.bn = nn.BatchNorm1d(128, affine=False)

    def forward(self, y1, y2):
        z1, z2 = self.projector(self.backbone(y1)), self.projector(self.backbone(y2))
        c = self.bn(z1).T @ self.bn(z2) / y1.shape[0]
        on_diag = (torch.diagonal(c) - 1).pow(2).sum()
        off_diag = c.pow(2).sum() - torch.diagonal(c).pow(2).sum()
        return on_diag + self.lambd * off_diag


torch.manual_seed(0)
model = RedundancyReduction(args.lambd)
optimizer = TrustRatioSGD(model.parameters(), lr=0.0)
loader = DataLoader(Views(), batch_size=args.batch_size, shuffle=True, drop_last=True)
total = args.epochs * len(loader)
warmup = len(loader)
base_lr = 0.2 * args.batch_size / 256
step = 0
for epoch in range(args.epochs):
    for y1, y2 in loader:
        lr = base_lr * step / warmup if step < warmup else \
            base_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / (total - warmup)))
        for g in optimizer.param_groups:
            g["lr"] = lr
        loss = model(y1, y2)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        step += 1
    print(f"epoch {epoch} loss {loss.item():.2f}")
