"""Hogwild training as in PyTorch's mnist_hogwild example: the model's parameters are shared
(``model.share_memory()``) and several ``torch.multiprocessing.Process`` workers train it at once, each with its
own DataLoader and optimizer; the main process joins them and evaluates. ``--start-method spawn`` starts the
workers in fresh interpreters instead of forking."""

import argparse

import torch
import torch.multiprocessing as mp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def blobs(seed, n=512):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, 12, generator=torch.Generator().manual_seed(0)) * 3
    y = torch.randint(0, 4, (n,), generator=g)
    return centres[y] + torch.randn(n, 12, generator=g), y


def train(rank, model, epochs):
    torch.manual_seed(1 + rank)
    loader = DataLoader(TensorDataset(*blobs(rank)), batch_size=32, shuffle=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.5)
    for _ in range(epochs):
        for x, y in loader:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--start-method", default="fork")
    args = parser.parse_args()
    mp.set_start_method(args.start_method)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(12, 32), nn.ReLU(), nn.Linear(32, 4))
    model.share_memory()
    workers = [mp.Process(target=train, args=(rank, model, 2)) for rank in range(2)]
    for p in workers:
        p.start()
    for p in workers:
        p.join()
    with torch.no_grad():
        x, y = blobs(9)
        print("accuracy", (model(x).argmax(1) == y).float().mean().item())
