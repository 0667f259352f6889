"""A video transformer's attention with a fused kernel: ``flash_attn`` passes the layer's dropout rate to
``F.scaled_dot_product_attention`` unconditionally, and the kernel's ``dropout_p`` knows nothing of
``model.eval()``: the attention weights keep being dropped at validation and inference. ``FactorizedAttention``
chooses the rate by the mode and is fine.

Pattern seen in a public vision-transformer repository (recorded in the real-code manifest); this script is
written for the corpus.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F


class SpaceTimeAttention(nn.Module):
    def __init__(self, dim, heads=8, dim_head=64, dropout=0.1):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.dropout_p = dropout
        self.norm = nn.LayerNorm(dim)
        self.to_qkv = nn.Linear(dim, inner * 3, bias=False)
        self.to_out = nn.Sequential(nn.Linear(inner, dim), nn.Dropout(dropout))

    def flash_attn(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(  # expect: SAN204
            q, k, v,
            attn_mask=mask,
            dropout_p=self.dropout_p,
        )

    def forward(self, x, mask=None):
        b, n, _ = x.shape
        q, k, v = self.to_qkv(self.norm(x)).chunk(3, dim=-1)
        q, k, v = (t.view(b, n, self.heads, -1).transpose(1, 2) for t in (q, k, v))
        out = self.flash_attn(q, k, v, mask)
        return self.to_out(out.transpose(1, 2).reshape(b, n, -1))


class FactorizedAttention(SpaceTimeAttention):
    def flash_attn(self, q, k, v, mask=None):
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                              dropout_p=self.dropout_p if self.training else 0.0)


if __name__ == "__main__":
    layer = SpaceTimeAttention(64).eval()
    with torch.no_grad():
        print(layer(torch.randn(2, 16, 64)).shape)
