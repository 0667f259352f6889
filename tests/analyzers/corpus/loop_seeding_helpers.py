"""Seeding through a local helper that seeds every library, and random / numpy used for data order
and augmentation afterwards."""

import os
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset


def fix_all_seeds(seed: int = 42) -> None:
    os.environ["PYTHONHASHSEED"] = str(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.cuda.manual_seed_all(seed)
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False


def seed_worker(worker_id):
    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


class NoisyDataset(Dataset):
    def __init__(self, n):
        self.items = list(range(n))
        random.shuffle(self.items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        x = torch.tensor(np.random.normal(size=8), dtype=torch.float32)
        return x, torch.tensor(self.items[i] % 2)


def main():
    fix_all_seeds(2024)
    generator = torch.Generator()
    generator.manual_seed(2024)
    loader = DataLoader(NoisyDataset(4096), batch_size=32, shuffle=True, worker_init_fn=seed_worker, generator=generator)
    model = nn.Sequential(nn.Linear(8, 32), nn.ReLU(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(5):
        model.train()
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()


if __name__ == "__main__":
    main()
