"""Training helpers (after torchvision's references/classification/engine.py)."""

import random

import numpy as np
import torch


def make_deterministic(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def train_step(model, criterion, optimizer, images, target):
    optimizer.zero_grad(set_to_none=True)
    loss = criterion(model(images), target)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_one_epoch(model, criterion, optimizer, data_loader, device, epoch):
    model.train()
    running = 0.0
    for i, (images, target) in enumerate(data_loader):
        images, target = images.to(device), target.to(device)
        optimizer.zero_grad()
        loss = criterion(model(images), target)
        loss.backward()
        optimizer.step()
        running += loss.item()
    return running / len(data_loader)


def evaluate(model, criterion, data_loader, device):
    model.eval()
    total, correct = 0, 0
    with torch.inference_mode():
        for images, target in data_loader:
            images, target = images.to(device), target.to(device)
            correct += (model(images).argmax(1) == target).sum().item()
            total += target.numel()
    return correct / total
