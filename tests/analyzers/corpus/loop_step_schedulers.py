"""Step-based schedules stepped per batch (OneCycleLR, a warm-up LambdaLR, transformers'
get_linear_schedule_with_warmup, cosine over len(loader) * epochs) and the ImageNet recipe
StepLR(30, 0.1) over 90 epochs stepped per epoch."""

import math

import torch
import torch.nn as nn
from torch.optim.lr_scheduler import CosineAnnealingLR, LambdaLR, OneCycleLR, StepLR
from torch.utils.data import DataLoader
from torchvision import datasets, models, transforms
from transformers import get_linear_schedule_with_warmup

torch.manual_seed(3)
EPOCHS = 90
WARMUP = 500

train_set = datasets.ImageFolder(
    "imagenet/train",
    transforms.Compose([transforms.RandomResizedCrop(224), transforms.RandomHorizontalFlip(), transforms.ToTensor()]),
)
train_loader = DataLoader(train_set, batch_size=256, shuffle=True, num_workers=16)
model = models.resnet50()
criterion = nn.CrossEntropyLoss()


def train_one_epoch(optimizer, scheduler=None):
    model.train()
    for images, target in train_loader:
        loss = criterion(model(images), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()


# The ImageNet recipe: StepLR(30, 0.1) for 90 epochs, stepped once per epoch.
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
scheduler = StepLR(optimizer, step_size=30, gamma=0.1)
for epoch in range(EPOCHS):
    train_one_epoch(optimizer)
    scheduler.step()

# OneCycleLR over all iterations
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
onecycle = OneCycleLR(optimizer, max_lr=0.4, total_steps=EPOCHS * len(train_loader))
for epoch in range(EPOCHS):
    for images, target in train_loader:
        optimizer.zero_grad()
        criterion(model(images), target).backward()
        optimizer.step()
        onecycle.step()

# linear warm-up, then constant
warmup = LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / WARMUP))
for epoch in range(10):
    train_one_epoch(optimizer, warmup)

# cosine annealing counted in iterations
cosine = CosineAnnealingLR(optimizer, T_max=EPOCHS * len(train_loader), eta_min=1e-5)
for epoch in range(EPOCHS):
    for images, target in train_loader:
        optimizer.zero_grad()
        criterion(model(images), target).backward()
        optimizer.step()
        cosine.step()

# transformers' warm-up schedule
adamw = torch.optim.AdamW(model.parameters(), lr=5e-5, weight_decay=0.01)
num_training_steps = 3 * len(train_loader)
linear = get_linear_schedule_with_warmup(adamw, num_warmup_steps=math.ceil(0.1 * num_training_steps), num_training_steps=num_training_steps)
for epoch in range(3):
    for images, target in train_loader:
        loss = criterion(model(images), target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        adamw.step()
        linear.step()
        adamw.zero_grad()

# ReduceLROnPlateau on the epoch's loss
plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="min", patience=3)
for epoch in range(20):
    epoch_loss = 0.0
    for images, target in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(images), target)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
    plateau.step(epoch_loss)
