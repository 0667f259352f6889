"""The network: it ends in a softmax, which is fine for inference but wrong under CrossEntropyLoss."""

import torch.nn as nn
import torch.nn.functional as F


class MLP(nn.Module):
    def __init__(self, in_features=784, hidden=256, classes=10):
        super().__init__()
        self.net = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_features, hidden),
            nn.ReLU(),
            nn.Linear(hidden, classes),
            nn.Softmax(dim=1),
        )

    def forward(self, x):
        return self.net(x)


class ConvNet(nn.Module):
    def __init__(self, classes=10):
        super().__init__()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 28 * 28, classes)

    def forward(self, x):
        x = F.relu(self.conv(x))
        x = x.flatten(1)
        return F.softmax(self.fc(x), dim=1)
