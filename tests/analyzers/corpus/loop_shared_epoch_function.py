"""One epoch function for training and testing: the mode and autograd follow whether an optimizer is passed, as
in many self-supervised linear-evaluation scripts. Nothing to report."""

import argparse

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


class LinearProbe(nn.Module):
    def __init__(self, features=512, classes=10):
        super().__init__()
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(3 * 32 * 32, features), nn.ReLU())
        self.head = nn.Linear(features, classes)

    def forward(self, x):
        with torch.no_grad():
            feats = self.encoder(x)
        return self.head(feats)


def run_epoch(net, loader, criterion, optimizer=None):
    training = optimizer is not None
    net.train() if training else net.eval()
    seen, total_loss, correct = 0, 0.0, 0
    with (torch.enable_grad() if training else torch.no_grad()):
        for images, labels in loader:
            logits = net(images)
            loss = criterion(logits, labels)
            if training:
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            seen += images.size(0)
            total_loss += loss.item() * images.size(0)
            correct += (logits.argmax(dim=1) == labels).sum().item()
    return total_loss / seen, correct / seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    torch.manual_seed(0)
    tf = transforms.ToTensor()
    train_loader = DataLoader(datasets.CIFAR10("data", train=True, transform=tf, download=True), batch_size=256,
                              shuffle=True)
    test_loader = DataLoader(datasets.CIFAR10("data", train=False, transform=tf, download=True), batch_size=256)
    net = LinearProbe()
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(net.head.parameters(), lr=0.1, momentum=0.9)
    for epoch in range(args.epochs):
        train_loss, train_acc = run_epoch(net, train_loader, criterion, optimizer)
        test_loss, test_acc = run_epoch(net, test_loader, criterion)
        print(epoch, train_loss, train_acc, test_loss, test_acc)


if __name__ == "__main__":
    main()
