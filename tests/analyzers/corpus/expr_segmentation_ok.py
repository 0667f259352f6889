"""Binary segmentation with a small U-Net: reshapes done right, BCE after sigmoid, albumentations pipelines."""

import os
import random

import albumentations as A
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from albumentations.pytorch import ToTensorV2
from torch.utils.data import DataLoader, Dataset


def set_seed(seed=42):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


class DoubleConv(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv_a = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn_a = nn.BatchNorm2d(cout)
        self.conv_b = nn.Conv2d(cout, cout, 3, padding=1)  # has a bias, followed by ReLU only
        self.drop = nn.Dropout2d(0.1)

    def forward(self, x):
        x = self.conv_a(x)
        x = self.bn_a(x)
        x = F.relu(x)
        x = self.conv_b(x)
        x = F.relu(x)
        return self.drop(x)


class UNetSmall(nn.Module):
    def __init__(self, classes=1):
        super().__init__()
        self.down1 = DoubleConv(3, 32)
        self.down2 = DoubleConv(32, 64)
        self.up = nn.ConvTranspose2d(64, 32, 2, stride=2)
        self.dec = DoubleConv(64, 32)
        self.head = nn.Conv2d(32, classes, 1)
        self.ctx = nn.Linear(64, 64)

    def context(self, x):
        n, c, h, w = x.shape
        flat = x.view(n, c, h * w)                   # merge of the trailing dims
        tokens = flat.permute(0, 2, 1).contiguous()  # (n, hw, c)
        tokens = self.ctx(tokens)
        back = tokens.permute(0, 2, 1).contiguous()
        return back.view(n, c, h, w)

    def forward(self, x):
        d1 = self.down1(x)
        d2 = self.down2(F.max_pool2d(d1, 2))
        d2 = self.context(d2)
        u = self.up(d2)
        return self.head(self.dec(torch.cat([u, d1], dim=1)))


class SegDataset(Dataset):
    def __init__(self, root, files, transform):
        self.root, self.files, self.transform = root, files, transform

    def __len__(self):
        return len(self.files)

    def __getitem__(self, i):
        image = np.load(os.path.join(self.root, "images", self.files[i]))
        mask = np.load(os.path.join(self.root, "masks", self.files[i]))
        out = self.transform(image=image, mask=mask)
        return out["image"], out["mask"].float().unsqueeze(0)


train_aug = A.Compose([
    A.RandomResizedCrop(256, 256),
    A.HorizontalFlip(p=0.5),
    A.ShiftScaleRotate(p=0.3),
    A.Normalize(),
    ToTensorV2(),
])
val_aug = A.Compose([A.Resize(256, 256), A.Normalize(), ToTensorV2()])


def dice(probs, target, eps=1e-6):
    num = 2 * (probs * target).sum(dim=(2, 3))
    den = probs.sum(dim=(2, 3)) + target.sum(dim=(2, 3))
    return ((num + eps) / (den + eps)).mean()


def main(root="data/seg"):
    set_seed()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    files = sorted(os.listdir(os.path.join(root, "images")))
    split = int(0.9 * len(files))
    train_ds = SegDataset(root, files[:split], train_aug)
    val_ds = SegDataset(root, files[split:], val_aug)
    train_dl = DataLoader(train_ds, batch_size=8, shuffle=True, num_workers=4, drop_last=True)
    val_dl = DataLoader(val_ds, batch_size=8, num_workers=4)

    model = UNetSmall().to(device)
    criterion = nn.BCELoss()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-4)
    for epoch in range(20):
        model.train()
        for images, masks in train_dl:
            images, masks = images.to(device), masks.to(device)
            probs = torch.sigmoid(model(images))
            loss = criterion(probs, masks)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        scores = []
        with torch.no_grad():
            for images, masks in val_dl:
                images = images.to(device)
                masks = masks.to(device)
                logits = model(images)
                flat = logits.permute(0, 2, 3, 1).contiguous().view(-1, 1)
                scores.append(dice(torch.sigmoid(logits), masks).item() + 0 * flat.sum().item())
        print(epoch, sum(scores) / len(scores))


if __name__ == "__main__":
    main()
