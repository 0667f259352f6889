"""Bugs inside classes, nested functions and helpers called from the loop."""
import torch
import torch.nn as nn
from torch.utils.data import DataLoader


class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 3, padding=1)
        self.bn = nn.BatchNorm2d(c)
        nn.init.zeros_(self.conv.weight)

    def forward(self, x):
        n, c, h, w = x.shape
        y = self.bn(self.conv(x))
        return y.view(n, h, w, c)


class Trainer:
    def __init__(self, model, dataset):
        self.model = model
        self.loader = DataLoader(dataset, batch_size=16)
        self.opt = torch.optim.Adam(model.parameters(), 1e-3, (0.9, 0.999), 1e-8, 1e-2)
        self.loss_fn = nn.NLLLoss()

    def step(self, x, y):
        out = self.model(x)
        loss = self.loss_fn(out, y)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return loss

    def fit(self, epochs):
        history = []
        for epoch in range(epochs):
            for x, y in self.loader:
                history.append(self.step(x, y))
            self.evaluate()
        return history

    def evaluate(self):
        self.model.eval()
        total = 0
        for x, y in self.loader:
            total += self.loss_fn(self.model(x), y).item()
        return total
