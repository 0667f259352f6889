"""Lightning MNIST with log_softmax + NLL, a DDP variant with DistributedSampler, and BCE-with-logits."""

import lightning as L
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, DistributedSampler, random_split
from torchvision import datasets, transforms


class LitMNIST(L.LightningModule):
    def __init__(self, lr=1e-3):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)
        self.lr = lr

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        return F.log_softmax(self.fc2(x), dim=1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.forward(x)
        loss = F.nll_loss(out, y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        out = self(x)
        self.log("val_loss", F.nll_loss(out, y))

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.lr)

    def train_dataloader(self):
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        train_set = datasets.MNIST("data", train=True, download=True, transform=tf)
        return DataLoader(train_set, batch_size=64, shuffle=True, num_workers=4)

    def val_dataloader(self):
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        val_set = datasets.MNIST("data", train=False, transform=tf)
        return DataLoader(val_set, batch_size=256, shuffle=False)


class MultiLabelHead(nn.Module):
    def __init__(self, dim, labels):
        super().__init__()
        self.fc = nn.Linear(dim, labels)
        self.loss_fn = nn.BCEWithLogitsLoss()

    def forward(self, feats, targets=None):
        logits = self.fc(feats)
        preds = torch.sigmoid(logits) > 0.5  # sigmoid only for the predictions
        if targets is None:
            return preds
        return self.loss_fn(logits, targets.float()), preds


def ddp_loaders(train_set, rank, world_size):
    train_sampler = DistributedSampler(train_set, num_replicas=world_size, rank=rank, shuffle=True)
    train_loader = DataLoader(train_set, batch_size=32, sampler=train_sampler, pin_memory=True)
    return train_loader, train_sampler


if __name__ == "__main__":
    L.seed_everything(7)
    full = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
    train_part, val_part = random_split(full, [55000, 5000])
    trainer = L.Trainer(max_epochs=3)
    trainer.fit(LitMNIST())
