"""A Lightning module that owns its data: `train_dataloader()` is the training loader whatever the dataset
attribute is called (annotated: it forgets shuffle=True; the validation loader rightly keeps the order)."""

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, random_split
from torchvision import datasets, transforms


class LitClassifier(pl.LightningModule):
    def __init__(self, data_dir="data", batch_size=64):
        super().__init__()
        self.data_dir = data_dir
        self.batch_size = batch_size
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 256), nn.ReLU(), nn.Linear(256, 10))

    def setup(self, stage=None):
        full = datasets.MNIST(self.data_dir, train=True, download=True, transform=transforms.ToTensor())
        self.fit_set, self.holdout = random_split(full, [55000, 5000])

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", F.cross_entropy(self(x), y))

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=1e-3, weight_decay=0.01)

    def train_dataloader(self):
        return DataLoader(self.fit_set, batch_size=self.batch_size, num_workers=4)  # expect: SAN802

    def val_dataloader(self):
        return DataLoader(self.holdout, batch_size=self.batch_size, num_workers=4)


if __name__ == "__main__":
    pl.seed_everything(0)
    pl.Trainer(max_epochs=3).fit(LitClassifier())
