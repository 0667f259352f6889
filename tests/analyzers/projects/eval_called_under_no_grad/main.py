"""Entry point: evaluation always runs under torch.no_grad(), decided here."""

import torch
import torch.nn as nn
import torchvision
from torch.utils.data import DataLoader

import engine
from engine import Validator


def run_validation(model, validator):
    return validator.validate(model)


@torch.no_grad()
def report(model, loader, device):
    print("accuracy", engine.evaluate(model, loader, device))


def main():
    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    train_set = torchvision.datasets.FakeData(size=256, transform=torchvision.transforms.ToTensor())
    val_set = torchvision.datasets.FakeData(size=64, transform=torchvision.transforms.ToTensor())
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=64)
    model = torchvision.models.resnet18(num_classes=10).to(device)
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    validator = Validator(val_loader, device)
    for epoch in range(2):
        model.train()
        for images, target in train_loader:
            optimizer.zero_grad()
            loss = criterion(model(images.to(device)), target.to(device))
            loss.backward()
            optimizer.step()
        report(model, val_loader, device)
        with torch.inference_mode():
            print("val loss", run_validation(model, validator))


if __name__ == "__main__":
    main()
