"""WGAN-style training: the critic is updated every batch, the generator every `n_critic` batches (alternation,
not gradient accumulation). The second script forgets to clear the generator's gradients (annotated)."""

import argparse

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def build(latent=64, image=28 * 28):
    generator = nn.Sequential(nn.Linear(latent, 256), nn.ReLU(), nn.Linear(256, image), nn.Tanh())
    critic = nn.Sequential(nn.Linear(image, 256), nn.LeakyReLU(0.2), nn.Linear(256, 1))
    return generator, critic


def train_wgan(loader, epochs, latent=64, n_critic=5, clip=0.01):
    generator, critic = build(latent)
    opt_gen = torch.optim.RMSprop(generator.parameters(), lr=5e-5)
    opt_critic = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
    for epoch in range(epochs):
        for step, (real, _) in enumerate(loader):
            real = real.view(real.size(0), -1)
            noise = torch.randn(real.size(0), latent)
            opt_critic.zero_grad()
            critic_loss = critic(generator(noise).detach()).mean() - critic(real).mean()
            critic_loss.backward()
            opt_critic.step()
            for p in critic.parameters():
                p.data.clamp_(-clip, clip)
            if step % n_critic == 0:
                opt_gen.zero_grad()
                gen_loss = -critic(generator(noise)).mean()
                gen_loss.backward()
                opt_gen.step()
    return generator


def train_forgetful(loader, epochs, latent=64, n_critic=5, clip=0.01):
    generator, critic = build(latent)
    gen_optimizer = torch.optim.RMSprop(generator.parameters(), lr=5e-5)
    critic_optimizer = torch.optim.RMSprop(critic.parameters(), lr=5e-5)
    for epoch in range(epochs):
        for step, (real, _) in enumerate(loader):  # expect: SAN101
            real = real.view(real.size(0), -1)
            noise = torch.randn(real.size(0), latent)
            critic_optimizer.zero_grad()
            critic_loss = critic(generator(noise).detach()).mean() - critic(real).mean()
            critic_loss.backward()
            critic_optimizer.step()
            for p in critic.parameters():
                p.data.clamp_(-clip, clip)
            if step % n_critic == 0:
                gen_loss = -critic(generator(noise)).mean()
                gen_loss.backward()
                gen_optimizer.step()
    return generator


class RealFakeClassifier(nn.Module):
    def __init__(self, image=28 * 28):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(image, 256), nn.LeakyReLU(0.2))
        self.head = nn.Linear(256, 1)

    def forward(self, x):
        return self.head(self.body(x)).squeeze(1)


def train_two_rates(loader, epochs):
    """Two learning rates over nested parameter sets: clearing the outer optimizer clears the head too."""
    classifier = RealFakeClassifier()
    head_optimizer = torch.optim.SGD(classifier.head.parameters(), lr=1e-2)
    body_optimizer = torch.optim.SGD(classifier.parameters(), lr=1e-4)
    for epoch in range(epochs):
        for real, label in loader:
            body_optimizer.zero_grad()
            loss = nn.functional.binary_cross_entropy_with_logits(classifier(real.view(real.size(0), -1)),
                                                                  label.float())
            loss.backward()
            head_optimizer.step()
            body_optimizer.step()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=50)
    args = parser.parse_args()
    torch.manual_seed(0)
    data = datasets.MNIST("data", download=True, transform=transforms.Compose([
        transforms.ToTensor(), transforms.Normalize((0.5,), (0.5,))]))
    train_loader = DataLoader(data, batch_size=64, shuffle=True, drop_last=True)
    train_wgan(train_loader, args.epochs)
    train_forgetful(train_loader, args.epochs)
    train_two_rates(train_loader, args.epochs)
