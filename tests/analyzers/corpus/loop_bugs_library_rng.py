"""Only torch is seeded while the data pipeline shuffles and augments with random and numpy."""

import glob
import random

import numpy as np
import torch
import torch.nn as nn
from PIL import Image
from torch.utils.data import DataLoader, Dataset

SEED = 7
torch.manual_seed(SEED)
torch.cuda.manual_seed_all(SEED)

files = sorted(glob.glob("data/*.png"))
random.shuffle(files)  # expect: SAN402
split = int(0.9 * len(files))
train_files, val_files = files[:split], files[split:]
noise_std = float(np.random.uniform(0.01, 0.1))  # expect: SAN402


class Patches(Dataset):
    def __init__(self, paths, train=True):
        self.paths = paths
        self.train = train

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        img = np.asarray(Image.open(self.paths[i]), dtype=np.float32) / 255.0
        if self.train:
            img = img + np.random.normal(0, noise_std, img.shape).astype(np.float32)
        return torch.from_numpy(img).permute(2, 0, 1), torch.tensor(int("cat" in self.paths[i]))


loader = DataLoader(Patches(train_files), batch_size=16, shuffle=True)
model = nn.Sequential(nn.Conv2d(3, 16, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 2))
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
for epoch in range(10):
    for x, y in loader:
        optimizer.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        optimizer.step()
