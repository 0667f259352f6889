"""A class-attention image transformer with layer drop ("LayerDrop" / stochastic depth over whole blocks): a
helper of the file picks the layers to skip by comparing a uniform draw with the rate it is handed. The
encoder calls it unconditionally, so once the model is in eval mode layers are still skipped at random and
every evaluation differs. The class-attention stage guards the call with ``self.training`` and is fine; the
masking helper of the pre-training wrapper draws a random mask, which is its task, not dropout.

Pattern seen in a public vision-transformer repository (recorded in the real-code manifest); this script is
written for the corpus.
"""

from random import randrange

import torch
import torch.nn as nn


def dropout_layers(layers, dropout):
    if dropout == 0:
        return layers
    to_drop = torch.zeros(len(layers)).uniform_(0.0, 1.0) < dropout
    if all(to_drop):
        to_drop[randrange(len(layers))] = False
    return [layer for layer, drop in zip(layers, to_drop) if not drop]


def prob_mask_like(t, prob):
    return torch.zeros(t.shape[:2], device=t.device).uniform_(0, 1) < prob


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))

    def forward(self, x):
        return x + self.mlp(self.norm(x))


class Encoder(nn.Module):
    def __init__(self, dim, depth, layer_dropout=0.05):
        super().__init__()
        self.layers = nn.ModuleList([Block(dim) for _ in range(depth)])
        self.layer_dropout = layer_dropout

    def forward(self, x):
        for block in dropout_layers(self.layers, dropout=self.layer_dropout):  # expect: SAN204
            x = block(x)
        return x


class ClassAttentionStage(Encoder):
    def forward(self, x):
        layers = dropout_layers(self.layers, dropout=self.layer_dropout) if self.training else self.layers
        for block in layers:
            x = block(x)
        return x


class MaskedPretraining(nn.Module):
    def __init__(self, encoder, dim, mask_prob=0.15):
        super().__init__()
        self.encoder = encoder
        self.mask_prob = mask_prob
        self.mask_token = nn.Parameter(torch.randn(dim))
        self.to_pixels = nn.Linear(dim, dim)

    def forward(self, patches):
        mask = prob_mask_like(patches, self.mask_prob)
        corrupted = torch.where(mask[..., None], self.mask_token.expand_as(patches), patches)
        predicted = self.to_pixels(self.encoder(corrupted))
        return ((predicted - patches) ** 2)[mask].mean()
