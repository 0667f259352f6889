"""Synthetic algorithmic tasks (parity, copying): every item is drawn afresh, so the index means nothing."""

import torch
from torch.utils.data import Dataset


class ParityTask(Dataset):
    """A random bit vector and the parity of its ones: ``__getitem__`` draws a new one on every call."""

    def __init__(self, size: int, bits: int) -> None:
        self.size, self.bits = size, bits

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, idx):
        x = torch.randint(0, 2, (self.bits,)).float()
        return x, x.sum() % 2


class StoredParity(Dataset):
    """The same task drawn once up front: item ``idx`` is a fixed example, so the order matters."""

    def __init__(self, size: int, bits: int) -> None:
        self.x = torch.randint(0, 2, (size, bits)).float()
        self.y = self.x.sum(dim=1) % 2

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, idx):
        return self.x[idx], self.y[idx]
