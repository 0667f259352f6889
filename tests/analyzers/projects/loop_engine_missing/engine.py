"""Training helpers that forget things: no zero_grad, no train() at the start of an epoch."""

import torch


def train_step(model, criterion, optimizer, images, target):
    loss = criterion(model(images), target)
    loss.backward()
    optimizer.step()
    return loss.item()


def train_one_epoch(model, criterion, optimizer, data_loader, device, epoch):
    running = 0.0
    for i, (images, target) in enumerate(data_loader):  # expect: SAN101
        images, target = images.to(device), target.to(device)
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
