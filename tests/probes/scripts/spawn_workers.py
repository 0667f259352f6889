"""Trains in torch.multiprocessing workers started with mp.spawn, as the PyTorch DDP tutorials do."""

import torch
import torch.multiprocessing as mp
from torch import nn


def worker(rank, world_size):
    torch.manual_seed(rank)
    model = nn.Linear(4, 2)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    for _ in range(3):
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(torch.randn(8, 4)), torch.randint(0, 2, (8,))).backward()
        optimizer.step()


if __name__ == "__main__":
    mp.spawn(worker, args=(2,), nprocs=2, join=True)
