"""Vision-transformer blocks that reshape after permute: legal views that only merge dims which stay adjacent in
memory, and the one view that merges dims a transpose separated (annotated)."""

import torch
import torch.nn as nn


class PatchEmbedding(nn.Module):
    def __init__(self, channels=3, dim=192, patch=16):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def forward(self, images):
        feats = self.proj(images)
        batch, dim, rows, cols = feats.shape
        # [batch, dim, rows, cols] -> [batch, rows, cols, dim] -> [batch, rows * cols, dim]: rows and cols stay adjacent
        return feats.permute(0, 2, 3, 1).view(batch, rows * cols, dim)


class SequenceFirstTokens(nn.Module):
    def __init__(self, channels=3, dim=192, patch=16):
        super().__init__()
        self.proj = nn.Conv2d(channels, dim, kernel_size=patch, stride=patch)

    def forward(self, images):
        feats = self.proj(images)
        batch, dim, rows, cols = feats.shape
        tokens = feats.permute(2, 3, 0, 1)
        tokens = tokens.view(rows * cols, batch, dim)
        return tokens


class DepthwiseTokenConv(nn.Module):
    def __init__(self, heads=4, head_dim=32):
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        self.conv = nn.Conv1d(heads * head_dim, heads * head_dim, kernel_size=3, padding=1, groups=heads * head_dim)

    def forward(self, x):
        seq_len, batch, heads, head_dim = x.shape
        x = x.permute(1, 2, 3, 0)
        x = x.view(batch, heads * head_dim, seq_len)
        x = self.conv(x)
        x = x.view(batch * heads * head_dim, 1, seq_len)
        return x


class WindowAttentionOutput(nn.Module):
    def __init__(self, dim=96, heads=3):
        super().__init__()
        self.heads = heads
        self.out = nn.Linear(dim, dim)

    def forward(self, attn, values):
        batch, tokens, dim = values.shape
        head_dim = dim // self.heads
        v = values.view(batch, tokens, self.heads, head_dim).transpose(1, 2)
        mixed = attn @ v
        per_token = mixed.transpose(1, 2).reshape(batch, tokens, dim)
        pairs = v.view(batch, self.heads, tokens, head_dim // 2, 2)  # only splits a dim: legal
        swapped = values.view(batch, tokens, self.heads, head_dim).transpose(1, 2)
        broken = swapped.view(batch * self.heads, tokens, head_dim)  # expect: SAN302
        return self.out(per_token), pairs, broken
