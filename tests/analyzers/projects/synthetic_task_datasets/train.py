"""Training on the synthetic tasks of tasks.py: an unshuffled loader over fresh random draws is fine, over stored
examples it is the bug."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from tasks import ParityTask, StoredParity


def main(stored: bool) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(16, 64), nn.ReLU(), nn.Linear(64, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.BCEWithLogitsLoss()
    if stored:
        train_loader = DataLoader(StoredParity(4096, 16), batch_size=64)  # expect: SAN802
    else:
        train_loader = DataLoader(ParityTask(4096, 16), batch_size=64)
    for _ in range(5):
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x).squeeze(1), y)
            loss.backward()
            optimizer.step()
    return model


if __name__ == "__main__":
    main(stored=True)
