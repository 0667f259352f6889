"""A tutorial that implements batch normalization itself and then uses it in a small CIFAR-10 network: the
convolutions before it keep their default bias, which the normalization subtracts again with the batch mean.
The MNIST model below passes ``bias=False`` as it should, and the detection stem uses torchvision's
``FrozenBatchNorm2d`` (fixed statistics: the bias is not cancelled there).

Pattern seen in a public paper-implementations repository (recorded in the real-code manifest); this script is
written for the corpus.
"""

import torch
import torch.nn as nn
from torchvision.ops.misc import FrozenBatchNorm2d


class BatchNorm(nn.Module):
    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.scale = nn.Parameter(torch.ones(channels))
        self.shift = nn.Parameter(torch.zeros(channels))
        self.register_buffer("exp_mean", torch.zeros(channels))
        self.register_buffer("exp_var", torch.ones(channels))

    def forward(self, x):
        if self.training:
            mean = x.mean(dim=(0, 2, 3))
            var = x.var(dim=(0, 2, 3), unbiased=False)
            self.exp_mean.lerp_(mean.detach(), self.momentum)
            self.exp_var.lerp_(var.detach(), self.momentum)
        else:
            mean, var = self.exp_mean, self.exp_var
        x = (x - mean[None, :, None, None]) / torch.sqrt(var[None, :, None, None] + self.eps)
        return self.scale[None, :, None, None] * x + self.shift[None, :, None, None]


def cifar_block(in_channels: int, out_channels: int) -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1),  # expect: SAN701
        BatchNorm(out_channels),
        nn.ReLU(inplace=True),
    )


class MnistModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5, 1, bias=False)
        self.bn1 = BatchNorm(20)
        self.fc = nn.Linear(20 * 24 * 24, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.bn1(self.conv1(x))).flatten(1))


stem = nn.Sequential(nn.Conv2d(3, 64, 7, stride=2, padding=3), FrozenBatchNorm2d(64), nn.ReLU())
features = nn.Sequential(cifar_block(3, 32), cifar_block(32, 64), nn.AdaptiveAvgPool2d(1), nn.Flatten())
