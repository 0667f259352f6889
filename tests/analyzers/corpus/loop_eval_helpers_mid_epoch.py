"""A trainer class whose evaluation helpers switch to eval() while model.train() opens every epoch,
a mid-epoch evaluation that restores the mode itself, and evaluation under the three no-grad forms
(decorator, inference_mode, set_grad_enabled(False))."""

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from project.data import make_datasets
from project.models import Net


@torch.no_grad()
def evaluate(model, loader, device):
    model.eval()
    losses = []
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        losses.append(F.cross_entropy(model(x), y).item())
    return sum(losses) / len(losses)


def test(model, loader, device):
    model.eval()
    correct = 0
    with torch.inference_mode():
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            correct += (model(x).argmax(1) == y).sum().item()
    return correct / len(loader.dataset)


def quick_validation(model, val_loader, device):
    was_training = model.training
    model.eval()
    with torch.set_grad_enabled(False):
        x, y = next(iter(val_loader))
        acc = (model(x.to(device)).argmax(1) == y.to(device)).float().mean().item()
    model.train(was_training)
    return acc


class Trainer:
    def __init__(self, model, train_loader, val_loader, device, epochs=10):
        self.model = model.to(device)
        self.train_loader = train_loader
        self.val_loader = val_loader
        self.device = device
        self.epochs = epochs
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)

    @torch.no_grad()
    def validate(self):
        self.model.eval()
        total = 0.0
        for x, y in self.val_loader:
            total += F.cross_entropy(self.model(x.to(self.device)), y.to(self.device)).item()
        return total / len(self.val_loader)

    def train_epoch(self, epoch):
        self.model.train()
        for step, (x, y) in enumerate(self.train_loader):
            x, y = x.to(self.device), y.to(self.device)
            self.optimizer.zero_grad()
            loss = F.cross_entropy(self.model(x), y)
            loss.backward()
            self.optimizer.step()
            if step % 200 == 0:
                print(epoch, step, loss.item(), quick_validation(self.model, self.val_loader, self.device))

    def fit(self):
        for epoch in range(self.epochs):
            self.train_epoch(epoch)
            val_loss = self.validate()
            print(f"epoch {epoch}: val loss {val_loss:.4f}")


def main():
    torch.manual_seed(0)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    train_set, val_set, test_set = make_datasets()
    train_loader = DataLoader(train_set, batch_size=64, shuffle=True)
    val_loader = DataLoader(val_set, batch_size=256)
    test_loader = DataLoader(test_set, batch_size=256)
    model = Net().to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for epoch in range(20):
        model.train()
        for x, y in train_loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        print(epoch, evaluate(model, val_loader, device))
    print("test", test(model, test_loader, device))
    Trainer(Net(), train_loader, val_loader, device).fit()


if __name__ == "__main__":
    main()
