"""The importance-weighted VAE of expr_importance_weighted_vae_views.py written correctly, three ways: the
samples are made contiguous where they are passed, decode() uses reshape(), and a spatial latent is permuted
channels-last before a helper views it as tokens, which merges only dims left adjacent in memory. No finding."""

import torch
import torch.nn as nn


class ContiguousSamplesVAE(nn.Module):
    def __init__(self, in_features=784, latent_dim=16, hidden=256, num_samples=5, num_estimates=2):
        super().__init__()
        self.latent_dim = latent_dim
        self.num_samples = num_samples
        self.num_estimates = num_estimates
        self.encoder = nn.Sequential(nn.Linear(in_features, hidden), nn.ReLU())
        self.fc_mu = nn.Linear(hidden, latent_dim)
        self.fc_var = nn.Linear(hidden, latent_dim)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, in_features))

    def encode(self, x):
        hidden = self.encoder(x)
        return self.fc_mu(hidden), self.fc_var(hidden)

    def decode(self, z):
        batch, estimates, samples, _ = z.shape
        out = self.decoder(z.view(-1, self.latent_dim))
        return out.view(batch, estimates, samples, -1)

    def reparameterize(self, mu, log_var):
        std = torch.exp(0.5 * log_var)
        return torch.randn_like(std) * std + mu

    def forward(self, x):
        mu, log_var = self.encode(x)
        mu = mu.repeat(self.num_estimates, self.num_samples, 1, 1).permute(2, 0, 1, 3)
        log_var = log_var.repeat(self.num_estimates, self.num_samples, 1, 1).permute(2, 0, 1, 3)
        z = self.reparameterize(mu, log_var)
        return self.decode(z.contiguous()), mu, log_var


class ReshapingVAE(ContiguousSamplesVAE):
    def decode_samples(self, z):
        batch, estimates, samples, _ = z.shape
        out = self.decoder(z.reshape(-1, self.latent_dim))
        return out.reshape(batch, estimates, samples, -1)

    def forward(self, x):
        mu, log_var = self.encode(x)
        mu = mu.repeat(self.num_estimates, self.num_samples, 1, 1).permute(2, 0, 1, 3)
        log_var = log_var.repeat(self.num_estimates, self.num_samples, 1, 1).permute(2, 0, 1, 3)
        return self.decode_samples(self.reparameterize(mu, log_var)), mu, log_var


class SpatialLatentVAE(nn.Module):
    def __init__(self, channels=3, latent_channels=8):
        super().__init__()
        self.to_stats = nn.Conv2d(channels, 2 * latent_channels, kernel_size=4, stride=4)
        self.mix = nn.Linear(latent_channels, latent_channels)

    def tokens(self, z, batch, channels):
        return z.view(batch, -1, channels)  # [B, H, W, C] -> [B, H * W, C]: H and W stay adjacent

    def forward(self, images):
        mu, log_var = self.to_stats(images).chunk(2, dim=1)
        batch, channels, rows, cols = mu.shape
        z = mu.permute(0, 2, 3, 1) + torch.exp(0.5 * log_var.permute(0, 2, 3, 1)) * 0.1
        return self.mix(self.tokens(z, batch, channels))
