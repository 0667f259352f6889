"""An importance-weighted VAE: the encoder's mean and log-variance are repeated over importance samples and
permuted to [batch, estimates, samples, latent]; the reparameterized samples keep that layout through the
elementwise arithmetic, and decode() views its parameter. sample() passes fresh, contiguous noise to the same
decode(): each call site is judged on its own, and forward()'s is the bug (annotated). The pattern is the one
of a fixed bug in a public VAE zoo (tests/bench/realcode/manifest.json, models/miwae.py)."""

import torch
import torch.nn as nn
import torch.nn.functional as F


class ImportanceWeightedVAE(nn.Module):
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
        flat = z.view(-1, self.latent_dim)  # expect: SAN302
        out = self.decoder(flat)
        return out.view(batch, estimates, samples, -1)

    def reparameterize(self, mu, log_var):
        std = torch.exp(0.5 * log_var)
        eps = torch.randn_like(std)
        return eps * std + mu

    def forward(self, x):
        mu, log_var = self.encode(x)
        mu = mu.repeat(self.num_estimates, self.num_samples, 1, 1).permute(2, 0, 1, 3)  # [B x M x S x D]
        log_var = log_var.repeat(self.num_estimates, self.num_samples, 1, 1).permute(2, 0, 1, 3)
        z = self.reparameterize(mu, log_var)
        return self.decode(z), mu, log_var

    def loss_function(self, x, recons, mu, log_var, kld_weight=1.0):
        target = x.repeat(self.num_estimates, self.num_samples, 1, 1).permute(2, 0, 1, 3)
        log_p_x_z = ((recons - target) ** 2).mean(-1)
        kld = -0.5 * torch.sum(1 + log_var - mu ** 2 - log_var.exp(), dim=-1)
        log_weight = log_p_x_z + kld_weight * kld
        weight = F.softmax(log_weight.detach(), dim=-1)
        return torch.mean(torch.sum(weight * log_weight, dim=-1))

    @torch.no_grad()
    def sample(self, num, device):
        z = torch.randn(num, 1, 1, self.latent_dim, device=device)
        return self.decode(z)
