"""A CIFAR-10 script whose datasets and loaders have neutral names (`data`, `batches`): what split each one holds
is in the `train=` argument, not in the names."""

import torch
import torch.nn as nn
import torchvision
import torchvision.transforms as T
from torch.utils.data import DataLoader


def main():
    torch.manual_seed(0)
    data = torchvision.datasets.CIFAR10("data", train=True, download=True, transform=T.ToTensor())
    batches = DataLoader(data, batch_size=128, num_workers=2)  # expect: SAN802
    held_out = torchvision.datasets.CIFAR10("data", train=False, download=True, transform=T.ToTensor())
    scoring = DataLoader(held_out, batch_size=256)
    model = torchvision.models.resnet18(num_classes=10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(30):
        model.train()
        for images, labels in batches:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in scoring:
                correct += (model(images).argmax(1) == labels).sum().item()
        print(epoch, correct / len(held_out))


if __name__ == "__main__":
    main()
