"""Entry point over engine.py's helpers: the bugs are only visible across the two files."""

import torch
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader

from engine import evaluate, train_one_epoch, train_step


def main():
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = torchvision.datasets.FakeData(size=1000, transform=torchvision.transforms.ToTensor())
    val_set = torchvision.datasets.FakeData(size=200, transform=torchvision.transforms.ToTensor())
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=64)
    model = torchvision.models.resnet18(num_classes=10).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(10):  # expect: SAN203
        train_one_epoch(model, criterion, optimizer, train_loader, device, epoch)
        print(epoch, evaluate(model, criterion, val_loader, device))

    model.train()
    for images, target in train_loader:  # expect: SAN101
        train_step(model, criterion, optimizer, images.to(device), target.to(device))


if __name__ == "__main__":
    main()  # expect: SAN401
