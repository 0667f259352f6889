"""A small, healthy classifier on synthetic data: `torchsanity probe examples/healthy_classifier.py`."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(n: int = 2048, features: int = 20, classes: int = 10) -> TensorDataset:
    """Gaussian blobs, one per class, with balanced labels."""
    centres = torch.randn(classes, features) * 2.0
    y = torch.arange(n) % classes
    x = centres[y] + torch.randn(n, features)
    x = (x - x.mean(0)) / x.std(0)
    return TensorDataset(x, y)


class MLP(nn.Module):
    def __init__(self, features: int = 20, hidden: int = 64, classes: int = 10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(features, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, classes)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    args = parser.parse_args()

    torch.manual_seed(0)
    loader = DataLoader(make_data(), batch_size=64, shuffle=True)
    model = MLP()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)

    for epoch in range(args.epochs):
        model.train()
        total = 0.0
        for x, y in loader:
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
            total += loss.item()
        print(f"epoch {epoch}: loss {total / len(loader):.4f}")
    torch.save(model.state_dict(), "healthy_classifier.pt")


if __name__ == "__main__":
    main()
