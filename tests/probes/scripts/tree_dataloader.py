"""Reads its samples from a shard server through DataLoader(num_workers=2); the server never answers, so the
script waits for its first batch — two worker processes alive — and never reaches backward().

Usage: tree_dataloader.py TOKEN PID_FILE (every process of the script appends its pid to PID_FILE)."""

import os
import sys
import time

import torch
from torch.utils.data import DataLoader, Dataset

token, pid_file = sys.argv[1], sys.argv[2]


def record(pid: int) -> None:
    with open(pid_file, "a", encoding="utf-8") as fh:
        fh.write(f"{pid}\n")


class ShardDataset(Dataset):
    """Samples fetched from a remote shard server (which never answers)."""

    def __len__(self) -> int:
        return 1024

    def __getitem__(self, index: int):
        while True:  # waiting for the shard server
            time.sleep(0.5)


def worker_init(worker_id: int) -> None:
    record(os.getpid())


record(os.getpid())
model = torch.nn.Sequential(torch.nn.Linear(16, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
loader = DataLoader(ShardDataset(), batch_size=8, shuffle=True, num_workers=2, worker_init_fn=worker_init)
for epoch in range(3):
    for x, y in loader:
        optimizer.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
