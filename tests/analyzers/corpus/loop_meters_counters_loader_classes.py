"""Contrastive pre-training with a linear probe: the loader class is picked at run time, gradients are
accumulated with a hand-kept counter, losses go into an AverageMeter, and features are extracted without
gradients for the probe (annotated: the bugs are the unshuffled training loader, the unscaled accumulated
loss and the meter fed the graph-attached loss)."""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader

from sampling import InfiniteDataLoader


class AverageMeter:
    def __init__(self):
        self.sum = 0.0
        self.count = 0

    def update(self, val, n=1):
        self.sum += val * n
        self.count += n

    @property
    def avg(self):
        return self.sum / max(self.count, 1)


class Encoder(nn.Module):
    def __init__(self, dim=128):
        super().__init__()
        self.conv = nn.Conv2d(3, 64, 3, padding=1)
        self.proj = nn.Linear(64, dim)

    def forward(self, x):
        b, c, h, w = x.shape
        feats = self.conv(x)
        tokens = feats.permute(0, 2, 3, 1).view(b, -1, 64)  # h * w merged, adjacent after the permute: legal
        return self.proj(tokens.mean(1))


def contrastive_logits(q, queue, temperature=0.07):
    K, D = queue.shape
    negatives = torch.mm(q, queue.detach().t().view(-1, K))  # (D, K) viewed as its own shape: legal
    positives = (q * q).sum(1, keepdim=True)
    return torch.cat([positives, negatives], dim=1) / temperature


def pretrain(args, train_set, queue):
    torch.manual_seed(args.seed)
    loader_cls = DataLoader if not args.infinite else InfiniteDataLoader
    train_loader = loader_cls(train_set, batch_size=args.batch_size, num_workers=4)  # expect: SAN802
    model = Encoder()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.03, momentum=0.9)
    criterion = nn.CrossEntropyLoss()
    losses = AverageMeter()
    model.train()
    step_count = 0
    for images, _ in train_loader:
        q = F.normalize(model(images), dim=1)
        targets = torch.zeros(len(q), dtype=torch.long)
        loss = criterion(contrastive_logits(q, queue), targets)
        loss.backward()  # expect: SAN105
        losses.update(loss, images.size(0))  # expect: SAN106
        step_count += 1
        if step_count >= args.accum_steps:
            optimizer.step()
            optimizer.zero_grad()
            step_count = 0
    print(f"pretrain loss {losses.avg:.4f}")
    return model


def extract_features(model, train_set):
    train_loader = DataLoader(train_set, batch_size=256, num_workers=4)
    model.eval()
    features, labels = [], []
    with torch.no_grad():
        for images, targets in train_loader:
            features.append(model(images))
            labels.append(targets)
    return torch.cat(features), torch.cat(labels)


def show_batch(train_set):
    preview_loader = DataLoader(train_set, batch_size=8)
    images, targets = next(iter(preview_loader))
    print(images.shape, targets[:8])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--accum-steps", type=int, default=4)
    parser.add_argument("--infinite", action="store_true")
    args = parser.parse_args()
