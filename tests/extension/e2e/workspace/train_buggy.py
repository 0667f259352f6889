"""A small classifier with classic training-loop bugs (torchsanity's end-to-end fixture)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class Net(nn.Module):
    def __init__(self, n_in=20, n_hidden=64, n_classes=5):
        super().__init__()
        self.fc1 = nn.Linear(n_in, n_hidden)
        self.fc2 = nn.Linear(n_hidden, n_classes)

    def forward(self, x):
        return self.fc2(F.relu(self.fc1(x)))


def make_data(n=256, n_in=20, n_classes=5):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, n_in, generator=g)
    w = torch.randn(n_in, n_classes, generator=g)
    y = (x @ w).argmax(dim=1)
    return TensorDataset(x, y)


def train(epochs=2):
    model = Net()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    criterion = nn.CrossEntropyLoss()
    loader = DataLoader(make_data(), batch_size=32, shuffle=True)
    for epoch in range(epochs):
        for x, y in loader:
            probs = F.softmax(model(x), dim=1)
            loss = criterion(probs, y)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}")


if __name__ == "__main__":
    train()
