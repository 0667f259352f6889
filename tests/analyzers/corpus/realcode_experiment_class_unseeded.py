"""A research experiment written as a configuration class: ``main()`` builds ``Configs()`` and calls its
``run()``, which alternates ``self.train()`` (a method of the class: the training loop, not a mode switch)
and ``self.sample()``. The optimizer steps, the loader shuffles and the noise is drawn from torch, and
nothing seeds it: no two runs are alike (``sample()``'s ``self.model.eval()`` / ``train()`` stay mode switches
of the network).

Pattern seen in a public paper-implementations repository (recorded in the real-code manifest); this
script is written for the corpus.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class Denoiser(nn.Module):
    def __init__(self, dim: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, 256), nn.SiLU(), nn.Dropout(0.1), nn.Linear(256, dim))

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None].float()], dim=-1))


class Configs:
    epochs: int = 20
    steps: int = 1000

    def __init__(self, device: str = "cpu"):
        self.device = device
        self.model = Denoiser().to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=2e-4)
        self.loader = DataLoader(TensorDataset(torch.randn(2048, 64)), batch_size=64, shuffle=True)

    def train(self):
        for (x,) in self.loader:
            x = x.to(self.device)
            t = torch.randint(0, self.steps, (x.shape[0],), device=self.device)
            noise = torch.randn_like(x)
            loss = F.mse_loss(self.model(x + noise, t), noise)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()

    @torch.no_grad()
    def sample(self):
        self.model.eval()
        x = torch.randn(16, 64, device=self.device)
        for t in reversed(range(self.steps)):
            x = x - self.model(x, torch.full((16,), t, device=self.device)) / self.steps
        self.model.train()
        return x

    def run(self):
        for _ in range(self.epochs):
            self.train()
            self.sample()


def main():
    configs = Configs()
    configs.run()


if __name__ == "__main__":
    main()  # expect: SAN401
