"""A small GAN whose networks and optimizers come out of one builder: the generator's optimizer is stepped every
iteration but only the discriminator's gradients are cleared (the generator's pile up), while the twin loop
below clears both."""

import torch
import torch.nn as nn


class Generator(nn.Module):
    def __init__(self, nz: int = 16) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(nz, 64), nn.ReLU(), nn.Linear(64, 2))

    def forward(self, z):
        return self.net(z)


class Critic(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))

    def forward(self, x):
        return self.net(x)


def build(lr: float = 2e-4):
    generator, critic = Generator(), Critic()
    opt_gen = torch.optim.Adam(generator.parameters(), lr=lr, betas=(0.5, 0.999))
    opt_crit = torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.999))
    return generator, critic, opt_gen, opt_crit


def real_batch(n: int = 64):
    angle = torch.rand(n) * 6.283
    return torch.stack([angle.cos(), angle.sin()], dim=1)


def train(steps: int = 1000):
    torch.manual_seed(0)
    bce = nn.BCEWithLogitsLoss()
    G, D, g_opt, d_opt = build()
    for step in range(steps):  # expect: SAN101
        real = real_batch()
        fake = G(torch.randn(real.size(0), 16))
        d_opt.zero_grad()
        d_loss = bce(D(real), torch.ones(real.size(0), 1)) + bce(D(fake.detach()), torch.zeros(real.size(0), 1))
        d_loss.backward()
        d_opt.step()
        g_loss = bce(D(fake), torch.ones(real.size(0), 1))
        g_loss.backward()
        g_opt.step()


def train_fixed(steps: int = 1000):
    torch.manual_seed(0)
    bce = nn.BCEWithLogitsLoss()
    G, D, g_opt, d_opt = build()
    for step in range(steps):
        real = real_batch()
        fake = G(torch.randn(real.size(0), 16))
        d_opt.zero_grad()
        d_loss = bce(D(real), torch.ones(real.size(0), 1)) + bce(D(fake.detach()), torch.zeros(real.size(0), 1))
        d_loss.backward()
        d_opt.step()
        g_opt.zero_grad()
        g_loss = bce(D(fake), torch.ones(real.size(0), 1))
        g_loss.backward()
        g_opt.step()


if __name__ == "__main__":
    train()
    train_fixed()
