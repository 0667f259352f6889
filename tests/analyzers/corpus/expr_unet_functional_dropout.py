"""A denoising U-Net's residual block with a time embedding. Its first version drops activations with
``F.dropout(h, self.dropout_rate)``, whose ``training`` argument defaults to True: sampling (``model.eval()``
under ``torch.no_grad()``) keeps dropping units and every generated image is noisier than it should be. The
attention block passes ``training=self.training`` and is fine; ``ResidualBlockFixed`` uses an ``nn.Dropout`` layer.

Pattern seen in public diffusion-model code (fixed upstream by switching to ``nn.Dropout``); this script is
written for the corpus.
"""

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class TimeEmbedding(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.channels = channels
        self.lin1 = nn.Linear(channels // 4, channels)
        self.lin2 = nn.Linear(channels, channels)

    def forward(self, t):
        half = self.channels // 8
        scale = math.log(10_000) / (half - 1)
        freqs = torch.exp(torch.arange(half, device=t.device) * -scale)
        emb = t[:, None] * freqs[None, :]
        emb = torch.cat((emb.sin(), emb.cos()), dim=1)
        return self.lin2(F.silu(self.lin1(emb)))


class ResidualBlock(nn.Module):
    def __init__(self, in_channels, out_channels, time_channels, groups=8, dropout_rate=0.1):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, padding=1)
        self.norm2 = nn.GroupNorm(groups, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1)
        self.time_emb = nn.Linear(time_channels, out_channels)
        self.shortcut = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        self.dropout_rate = dropout_rate

    def forward(self, x, t):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb(F.silu(t))[:, :, None, None]
        h = self.conv2(F.dropout(F.silu(self.norm2(h)), self.dropout_rate))  # expect: SAN204
        return h + self.shortcut(x)


class ResidualBlockFixed(ResidualBlock):
    def __init__(self, *args, dropout_rate=0.1, **kwargs):
        super().__init__(*args, dropout_rate=dropout_rate, **kwargs)
        self.dropout = nn.Dropout(dropout_rate)

    def forward(self, x, t):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb(F.silu(t))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return h + self.shortcut(x)


class AttentionBlock(nn.Module):
    def __init__(self, channels, heads=4, dropout=0.1):
        super().__init__()
        self.norm = nn.GroupNorm(8, channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.out = nn.Linear(channels, channels)
        self.heads, self.dropout = heads, dropout

    def forward(self, x):
        b, c, hgt, wid = x.shape
        h = self.norm(x).view(b, c, -1).permute(0, 2, 1)
        q, k, v = self.qkv(h).chunk(3, dim=-1)
        q, k, v = (y.reshape(b, -1, self.heads, c // self.heads).transpose(1, 2) for y in (q, k, v))
        attn = F.softmax(q @ k.transpose(-2, -1) / math.sqrt(c // self.heads), dim=-1)
        attn = F.dropout(attn, self.dropout, training=self.training)
        h = (attn @ v).transpose(1, 2).reshape(b, -1, c)
        return x + self.out(h).permute(0, 2, 1).reshape(b, c, hgt, wid)


@torch.no_grad()
def sample(blocks, time_embedding, x, steps):
    for block in blocks:
        block.eval()
    for step in reversed(range(steps)):
        t = time_embedding(torch.full((x.shape[0],), step, dtype=torch.float32))
        for block in blocks:
            x = block(x, t) if isinstance(block, ResidualBlock) else block(x)
    return x
