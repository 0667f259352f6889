"""A small GAN on 8x8 "sprites" from a DataLoader, in the shape of PyTorch's DCGAN example with MLPs: the
discriminator's step (real batch, then the generator's output ``.detach()``-ed) and the generator's step (the
same fake batch through the discriminator, labelled real), each model with its own Adam. Logits with
BCEWithLogitsLoss. ``--g-first`` trains the generator before the discriminator in each iteration;
``--n-critic N`` trains the discriminator N times per generator step (WGAN's schedule)."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--g-first", action="store_true")
parser.add_argument("--n-critic", type=int, default=1)
args = parser.parse_args()

torch.manual_seed(1)
nz = 16
# sprites: a bright square at a random place on a dark 8x8 canvas, scaled to [-1, 1]
canvas = -torch.ones(512, 8, 8)
for i, (r, c) in enumerate(torch.randint(0, 6, (512, 2)).tolist()):
    canvas[i, r:r + 3, c:c + 3] = 1.0
loader = DataLoader(TensorDataset(canvas.view(512, 64)), batch_size=32, shuffle=True, drop_last=True)

netG = nn.Sequential(nn.Linear(nz, 128), nn.BatchNorm1d(128), nn.ReLU(), nn.Linear(128, 64), nn.Tanh())
netD = nn.Sequential(nn.Linear(64, 128), nn.LeakyReLU(0.2), nn.Linear(128, 1))
criterion = nn.BCEWithLogitsLoss()
optD = torch.optim.Adam(netD.parameters(), lr=2e-4, betas=(0.5, 0.999))
optG = torch.optim.Adam(netG.parameters(), lr=2e-4, betas=(0.5, 0.999))


def train_d(real, fake):
    optD.zero_grad()
    ones, zeros = torch.ones(real.size(0), 1), torch.zeros(real.size(0), 1)
    loss = criterion(netD(real), ones) + criterion(netD(fake.detach()), zeros)
    loss.backward()
    optD.step()


def train_g(fake):
    optG.zero_grad()
    loss = criterion(netD(fake), torch.ones(fake.size(0), 1))
    loss.backward()
    optG.step()


for epoch in range(3):
    for it, (real,) in enumerate(loader):
        fake = netG(torch.randn(real.size(0), nz))
        if args.g_first:
            train_g(fake)
            train_d(real, fake)
        else:
            train_d(real, fake)
            if it % args.n_critic == args.n_critic - 1:
                train_g(fake)
