"""Input-bound: a small CNN on 3x16x16 images whose Dataset decodes each item slowly (a sleep stands in for
reading and decoding a file), loaded in the main process — the model waits for data most of every step."""

import time

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class SlowImages(Dataset):
    def __init__(self, n):
        g = torch.Generator().manual_seed(0)
        self.labels = torch.randint(0, 4, (n,), generator=g)
        self.images = torch.randn(n, 3, 16, 16, generator=g) + self.labels.view(-1, 1, 1, 1) * 0.5

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        time.sleep(0.002)  # "decoding"
        return self.images[i], self.labels[i]


torch.manual_seed(0)
loader = DataLoader(SlowImages(640), batch_size=16, shuffle=True)
model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))
optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
criterion = nn.CrossEntropyLoss()
for epoch in range(2):
    for images, labels in loader:
        optimizer.zero_grad()
        loss = criterion(model(images), labels)
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch}: loss {loss.item():.4f}")
