"""Validation that switches to eval() and never switches back, a validation loop with neither eval()
nor no_grad, and a predict helper without no_grad."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from mylib import build_datasets, build_model

torch.manual_seed(0)


def validate(model, loader, criterion):
    model.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in loader:
            total += criterion(model(x), y).item()
    return total / len(loader)


def predict(model, inputs):  # expect: SAN202
    model.eval()
    return model(inputs).argmax(dim=1)


def main():
    train_set, val_set = build_datasets()
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=128)
    model = build_model()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-4)

    model.train()
    for epoch in range(30):  # expect: SAN203
        for x, y in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        print(epoch, validate(model, val_loader, criterion))

    for epoch in range(5):
        model.train()
        for x, y in train_loader:
            optimizer.zero_grad()
            criterion(model(x), y).backward()
            optimizer.step()
        val_loss = 0.0
        for x, y in val_loader:  # expect: SAN201, SAN202
            val_loss += criterion(model(x), y).item()
        print(epoch, val_loss / len(val_loader))
    print(predict(model, next(iter(val_loader))[0]))


if __name__ == "__main__":
    main()
