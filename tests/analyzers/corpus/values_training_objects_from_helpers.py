"""A training script whose model, optimizer and scheduler come out of one builder helper (a common layout in
research repositories): the objects are known by what the helper returns, not by their names."""

import argparse
import random

import numpy as np
import torch
import torch.nn as nn
from torch.utils.data import DataLoader, TensorDataset


class SmallCNN(nn.Module):
    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1))
        self.head = nn.Linear(16, classes)

    def forward(self, x):
        return self.head(self.features(x).flatten(1))


def build_training(cfg):
    net = SmallCNN(cfg.classes)
    opt = torch.optim.SGD(net.parameters(), lr=cfg.lr, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=30, gamma=0.1)
    return net, opt, sched


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--classes", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    cfg = parser.parse_args()
    torch.manual_seed(cfg.seed)
    random.seed(cfg.seed)
    np.random.seed(cfg.seed)

    data = TensorDataset(torch.randn(512, 3, 32, 32), torch.randint(0, cfg.classes, (512,)))
    loader = DataLoader(data, batch_size=64, shuffle=True)
    classifier, optimizer, scheduler = build_training(cfg)
    criterion = nn.CrossEntropyLoss()
    for epoch in range(90):
        classifier.train()
        for images, labels in loader:
            optimizer.zero_grad()
            loss = criterion(classifier(images), labels)
            loss.backward()
            optimizer.step()
            scheduler.step()  # expect: SAN502
        print(f"epoch {epoch}: {loss.item():.3f}")


if __name__ == "__main__":
    main()
