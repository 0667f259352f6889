"""Training entry point: imports the networks from model.py."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

from model import ConvNet, MLP

torch.manual_seed(0)
device = "cuda" if torch.cuda.is_available() else "cpu"

train_set = datasets.MNIST("data", train=True, download=True, transform=transforms.ToTensor())
train_loader = DataLoader(train_set, batch_size=64, shuffle=True)

model = MLP().to(device)
cnn = ConvNet().to(device)
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.SGD(list(model.parameters()) + list(cnn.parameters()), lr=0.05)

for epoch in range(3):
    model.train()
    cnn.train()
    for images, labels in train_loader:
        images, labels = images.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(images)
        loss = criterion(outputs, labels)  # expect: SAN601
        loss = loss + F.cross_entropy(cnn(images), labels)  # expect: SAN601
        loss.backward()
        optimizer.step()
    print(epoch, loss.item())
