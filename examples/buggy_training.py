"""A small image classifier with the training-loop mistakes torchsanity exists to catch.

Run `torchsanity check examples/buggy_training.py` to see them, and `--diff` for the safe fixes.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class ConvNet(nn.Module):
    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, kernel_size=3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.head = nn.Linear(16 * 8 * 8, num_classes)

    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, h, w, c).view(n, c, h, w)  # meant: channels-last → channels-first
        x = F.relu(self.bn(self.conv(x)))
        x = F.max_pool2d(x, 4)
        return F.softmax(self.head(x.flatten(1)), dim=1)


def evaluate(model, loader):
    correct = 0
    for images, labels in loader:
        correct += (model(images).argmax(1) == labels).sum().item()
    return correct / len(loader.dataset)


def main() -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    images, labels = torch.randn(512, 3, 32, 32), torch.randint(0, 10, (512,))
    train_loader = DataLoader(TensorDataset(images, labels), batch_size=64)
    val_loader = DataLoader(TensorDataset(images[:128], labels[:128]), batch_size=64)

    model = ConvNet().to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)

    for epoch in range(5):
        model.train()
        running_loss = 0.0
        for images, labels in train_loader:
            images.to(device)
            labels = labels.to(device)
            outputs = model(images)
            loss = criterion(outputs, labels)
            loss.backward()
            optimizer.step()
            scheduler.step()
            running_loss += loss
        print(f"epoch {epoch}: loss {running_loss / len(train_loader):.3f}, acc {evaluate(model, val_loader):.3f}")


if __name__ == "__main__":
    main()
