"""Gradient accumulation as in the seed notes: `i % num_accum == 0` steps after the first batch, and a
second loop that forgets to divide the loss."""

import random

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader
from torchvision import datasets, models, transforms

random.seed(0)
np.random.seed(0)
torch.manual_seed(0)

transform = transforms.Compose([transforms.Resize(224), transforms.ToTensor()])
trainLoader = DataLoader(datasets.CIFAR10("data", train=True, download=True, transform=transform), batch_size=1, shuffle=True)
net = models.resnet18(num_classes=10)
criterion = nn.CrossEntropyLoss()
optimizer = optim.SGD(net.parameters(), lr=0.001, momentum=0.9)

num_accum = 5
optimizer.zero_grad()
for epoch in range(10):
    running_loss = 0.0
    for i, data in enumerate(trainLoader, 0):
        inputs, labels = data
        outputs = net(inputs)
        loss = criterion(outputs, labels) / num_accum
        loss.backward()
        if i % num_accum == 0:  # expect: SAN104
            optimizer.step()
            optimizer.zero_grad()
        running_loss += loss.item()

accumulation_steps = 4
scaler = torch.cuda.amp.GradScaler()
for epoch in range(10):
    optimizer.zero_grad(set_to_none=True)
    for step, (inputs, labels) in enumerate(trainLoader):
        with torch.autocast("cuda"):
            outputs = net(inputs)
            loss = criterion(outputs, labels)
        scaler.scale(loss).backward()  # expect: SAN105
        if (step + 1) % accumulation_steps == 0 or step + 1 == len(trainLoader):
            scaler.step(optimizer)
            scaler.update()
            optimizer.zero_grad(set_to_none=True)
