"""A small image classifier whose stem is frozen (fine-tuning style): 3×16×16 images of coloured bars, four
classes by the bar's orientation and colour. The report's model summary must count the frozen parameters apart,
show the first convolution's 8 filters and a thumbnail grid of the batch."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)


def images(n: int) -> tuple[torch.Tensor, torch.Tensor]:
    labels = torch.arange(n) % 4
    x = torch.rand(n, 3, 16, 16) * 0.2
    for i, label in enumerate(labels.tolist()):
        row = torch.randint(3, 13, ()).item()
        channel = label % 2 * 2  # red or blue
        if label < 2:
            x[i, channel, row - 1:row + 2, :] = 1.0  # horizontal bar
        else:
            x[i, channel, :, row - 1:row + 2] = 1.0  # vertical bar
    return (x - 0.5) / 0.5, labels


class BarNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.features = nn.Sequential(nn.ReLU(), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Linear(16 * 4 * 4, 4)

    def forward(self, x):
        return self.head(self.features(self.stem(x)).flatten(1))


def main() -> None:
    x, y = images(256)
    loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
    model = BarNet()
    for p in model.stem.parameters():
        p.requires_grad_(False)  # a "pretrained" stem, kept as it is
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(3):
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.3f}")


if __name__ == "__main__":
    main()
