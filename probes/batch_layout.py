"""Where the samples of a batch are: the dimension of a tensor that holds them, or a list that holds one tensor per
sample (images of different sizes)."""

from __future__ import annotations

import torch

from .capture import Captured, Entry


def batch_axis_of(t: torch.Tensor, n: int, batch_dim: int) -> int | None:
    """The dimension of ``t`` holding ``n`` samples: ``batch_dim`` when it does, 0 for lower-rank tensors (labels)."""
    if t.dim() > batch_dim and t.shape[batch_dim] == n:
        return batch_dim
    if 0 < t.dim() <= batch_dim and t.shape[0] == n:
        return 0
    return None


def sample_list(entry: Entry, cap: Captured) -> list[torch.Tensor] | None:
    """The samples when the model's first argument is a list holding one tensor per sample (images of different
    sizes, as native-resolution ViTs and detection models take them): tensors of one rank and dtype whose shapes
    differ, or as many as the DataLoader's batch size, unless all of them carry that batch size along one dimension
    (a list of two views of a batch is not a list of samples)."""
    arg = entry.args[0] if entry.args else None
    if not isinstance(arg, list) or len(arg) < 2 or not all(isinstance(t, torch.Tensor) for t in arg):
        return None
    if len({t.dim() for t in arg}) != 1 or len({t.dtype for t in arg}) != 1 or arg[0].dim() == 0:
        return None
    size = cap.dataloader_batch_size
    if size and any(all(t.shape[d] == size for t in arg) for d in range(arg[0].dim())):
        return None
    if len({tuple(t.shape) for t in arg}) > 1 or len(arg) == size:
        return arg
    return None
