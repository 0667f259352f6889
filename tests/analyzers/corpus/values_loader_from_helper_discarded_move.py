"""A training script whose loaders come out of a helper under names that do not say "loader": a batch moved with
`x.to(device)` as a statement (the result thrown away) is still a tensor the loop drew from a DataLoader."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


def make_data(n: int = 512):
    features = torch.randn(n, 20)
    targets = (features[:, 0] > 0).long()
    data = TensorDataset(features, targets)
    return DataLoader(data, batch_size=32, shuffle=True), DataLoader(data, batch_size=128)


def main():
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    batches, held_out = make_data()
    model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 2)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(5):
        model.train()
        for step, (x, y) in enumerate(batches):
            x.to(device)  # expect: SAN901
            y = y.to(device)
            optimizer.zero_grad()
            loss = criterion(model(x), y)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            for x, y in held_out:
                x, y = x.to(device), y.to(device)
                print(epoch, (model(x).argmax(1) == y).float().mean().item())


if __name__ == "__main__":
    main()
