"""Evaluation helpers: they leave switching autograd off to their callers (main.py does it)."""

import torch


def evaluate(model, data_loader, device):
    model.eval()
    total, correct = 0, 0
    for images, target in data_loader:
        images, target = images.to(device), target.to(device)
        correct += (model(images).argmax(1) == target).sum().item()
        total += target.numel()
    return correct / total


class Validator:
    def __init__(self, loader, device):
        self.loader = loader
        self.device = device

    def validate(self, model):
        model.eval()
        losses = []
        for images, target in self.loader:
            losses.append(torch.nn.functional.cross_entropy(model(images.to(self.device)), target.to(self.device)).item())
        return sum(losses) / len(losses)
