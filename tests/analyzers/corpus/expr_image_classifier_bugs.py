"""An image classifier with the expression / model / data mistakes of the catalog (annotated)."""

import random

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

torch.manual_seed(42)
random.seed(42)
np.random.seed(42)
device = "cuda" if torch.cuda.is_available() else "cpu"


class PatchHead(nn.Module):
    def __init__(self, channels=64, num_classes=10):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, channels, kernel_size=3, padding=1),  # expect: SAN701
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(channels, channels, kernel_size=3, padding=1, bias=False),
            nn.BatchNorm2d(channels),
            nn.ReLU(inplace=True),
        )
        self.proj = nn.Linear(channels, channels)
        self.classifier = nn.Linear(channels, num_classes)

    def forward(self, x):
        x = self.features(x)
        n, c, h, w = x.shape
        tokens = x.view(n, h * w, c)  # expect: SAN301
        tokens = self.proj(tokens)
        mixed = tokens.transpose(1, 2)
        pooled = mixed.view(n, c, h, w).mean(dim=(2, 3))  # expect: SAN302
        return self.classifier(pooled)


train_tf = transforms.Compose([
    transforms.RandomResizedCrop(224),
    transforms.RandomHorizontalFlip(),
    transforms.ToTensor(),
])
val_tf = transforms.Compose([
    transforms.Resize(256),
    transforms.RandomCrop(224),  # expect: SAN801
    transforms.ToTensor(),
])

train_ds = datasets.ImageFolder("data/train", transform=train_tf)
val_ds = datasets.ImageFolder("data/val", transform=val_tf)
train_loader = DataLoader(train_ds, batch_size=64, num_workers=4)  # expect: SAN802
val_loader = DataLoader(val_ds, batch_size=64, shuffle=False)

model = PatchHead().to(device)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)

for epoch in range(10):
    model.train()
    for images, labels in train_loader:
        images.to(device)  # expect: SAN901
        labels = labels.to(device)
        optimizer.zero_grad()
        logits = model(images)
        probs = F.softmax(logits, dim=1)
        loss = criterion(probs, labels)  # expect: SAN601
        loss.backward()
        optimizer.step()

    model.eval()
    correct = 0
    with torch.no_grad():
        for images, labels in val_loader:
            images, labels = images.to(device), labels.to(device)
            out = model.forward(images)  # expect: SAN703
            correct += (out.argmax(1) == labels).sum().item()
    print(epoch, correct / len(val_ds))
