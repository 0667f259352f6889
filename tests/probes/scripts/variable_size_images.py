"""A classifier of RGB images of different sizes, batched as a list (as native-resolution vision transformers and
detection models take them): the DataLoader's collate_fn keeps the images in a list and stacks only the labels; the
model runs its convolutions on each image, pools each to one vector and classifies the stack.

The class is the colour that dominates the image (red, green or blue), so the data carries signal.
--mix centres the pooled features over the batch before the classifier (a hand-rolled "batch norm" that makes each
sample's output depend on the others: batch-independence must fail)."""

import argparse

import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--batch-size", type=int, default=16)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--mix", action="store_true")
args = parser.parse_args()


class Shapes(Dataset):
    def __init__(self, n=96):
        g = torch.Generator().manual_seed(0)
        self.items = []
        for i in range(n):
            h, w = (int(v) for v in torch.randint(12, 29, (2,), generator=g))
            label = i % 3
            img = torch.rand(3, h, w, generator=g) * 0.5
            img[label] += 0.5
            self.items.append(((img - 0.5) / 0.3, label))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


def collate(batch):
    return [img for img, _ in batch], torch.tensor([label for _, label in batch])


class AnySizeNet(nn.Module):
    def __init__(self, classes=3, mix=False):
        super().__init__()
        self.mix = mix
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1),
                                      nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(32, classes)

    def forward(self, images):
        pooled = torch.cat([self.features(img.unsqueeze(0)) for img in images])
        if self.mix:
            pooled = pooled - pooled.mean(0, keepdim=True)
        return self.head(pooled)


torch.manual_seed(0)
model = AnySizeNet(mix=args.mix)
optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
criterion = nn.CrossEntropyLoss()
loader = DataLoader(Shapes(), batch_size=args.batch_size, shuffle=True, collate_fn=collate)
for epoch in range(args.epochs):
    for images, labels in loader:
        loss = criterion(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"epoch {epoch} loss {loss.item():.3f}")
