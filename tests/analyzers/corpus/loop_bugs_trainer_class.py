"""A class-based trainer: evaluate() switches to eval() without no_grad and fit() never switches back;
the running loss list keeps every graph."""

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from project.data import build_datasets
from project.models import build_model


class Trainer:
    def __init__(self, model, train_set, val_set, epochs=30, lr=3e-4):
        self.model = model
        self.train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
        self.val_loader = DataLoader(val_set, batch_size=256)
        self.epochs = epochs
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=epochs)
        self.losses = []

    def train_step(self, x, y):
        self.optimizer.zero_grad()
        loss = F.cross_entropy(self.model(x), y)
        loss.backward()
        self.optimizer.step()
        return loss

    def fit(self):
        for epoch in range(self.epochs):  # expect: SAN203
            for x, y in self.train_loader:
                loss = self.train_step(x, y)
                self.losses.append(loss.item())
            self.scheduler.step()
            print(f"epoch {epoch}: val acc {self.evaluate():.3f}")

    def evaluate(self):  # expect: SAN202
        self.model.eval()
        correct = total = 0
        for x, y in self.val_loader:
            correct += (self.model(x).argmax(1) == y).sum().item()
            total += y.numel()
        return correct / total


if __name__ == "__main__":
    torch.manual_seed(0)
    train_set, val_set = build_datasets()
    Trainer(build_model(), train_set, val_set).fit()
