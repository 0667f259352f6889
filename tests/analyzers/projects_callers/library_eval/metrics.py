"""A library module: nothing in the project calls `evaluate`, and it never switches autograd off."""

import torch


def evaluate(model, data_loader):  # expect: SAN202
    model.eval()
    correct = 0
    for images, target in data_loader:
        correct += (model(images).argmax(1) == target).sum().item()
    return correct


def predict(model, data_loader):
    model.eval()
    with torch.no_grad():
        return [model(images).argmax(1) for images, _ in data_loader]
