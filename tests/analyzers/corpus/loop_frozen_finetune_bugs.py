"""Transfer learning on a small image dataset with three ways to set up fine-tuning. Two of them build
the optimizer over parameters that are all frozen, so the loop runs, prints a loss and trains nothing:
the new head was attached before the whole network was frozen, and a linear probe whose optimizer was
handed the frozen backbone instead of the head. The feature extractor set up as in torchvision's
tutorial (freeze, then attach a new head) is right."""

import argparse

import torch
import torch.nn as nn
import torch.optim as optim
import torchvision
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


def build_feature_extractor(num_classes):
    """Freeze the pretrained network, then attach a new head: the head is created trainable."""
    model = torchvision.models.resnet18(weights="DEFAULT")
    for param in model.parameters():
        param.requires_grad = False
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    optimizer = optim.SGD(model.fc.parameters(), lr=1e-3, momentum=0.9)
    return model, optimizer


def build_frozen_by_mistake(num_classes):
    """The head is attached first and then frozen along with everything else."""
    model = torchvision.models.resnet18(weights="DEFAULT")
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    for param in model.parameters():
        param.requires_grad = False
    model = model.to("cpu")
    optimizer = optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)  # expect: SAN107
    return model, optimizer


class LinearProbe(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.backbone = torchvision.models.resnet50(weights="DEFAULT")
        self.backbone.fc = nn.Identity()
        self.head = nn.Linear(2048, num_classes)

    def forward(self, x):
        return self.head(self.backbone(x))


def build_linear_probe(num_classes, lr):
    probe = LinearProbe(num_classes)
    probe.backbone.eval().requires_grad_(False)
    optimizer = torch.optim.AdamW(  # expect: SAN107
        [{"params": probe.backbone.parameters(), "lr": lr}],
        lr=lr,
        weight_decay=0.05,
    )
    return probe, optimizer


def train(model, optimizer, loader, epochs):
    criterion = nn.CrossEntropyLoss()
    model.train()
    for epoch in range(epochs):
        running = 0.0
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(model(images), labels)
            loss.backward()
            optimizer.step()
            running += loss.item()
        print(f"epoch {epoch}: loss {running / len(loader):.4f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", default="data/hymenoptera")
    parser.add_argument("--mode", choices=["extract", "mistake", "probe"], default="extract")
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    transform = transforms.Compose([
        transforms.RandomResizedCrop(224),
        transforms.RandomHorizontalFlip(),
        transforms.ToTensor(),
        transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225]),
    ])
    train_set = datasets.ImageFolder(f"{args.data}/train", transform)
    train_loader = DataLoader(train_set, batch_size=32, shuffle=True, num_workers=4)

    if args.mode == "extract":
        model, optimizer = build_feature_extractor(len(train_set.classes))
    elif args.mode == "mistake":
        model, optimizer = build_frozen_by_mistake(len(train_set.classes))
    else:
        model, optimizer = build_linear_probe(len(train_set.classes), 1e-3)
    train(model, optimizer, train_loader, args.epochs)


if __name__ == "__main__":
    main()
