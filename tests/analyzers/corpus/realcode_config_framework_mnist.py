"""An MNIST experiment on a configuration framework (labml's): ``Configs`` extends the framework's
``SimpleTrainValidConfigs``, whose ``step()`` backpropagates and steps the optimizer on every training batch when
``run()`` drives it. The script never seeds torch, so the shuffled loader and the initial weights differ on every
run. A helper class with a ``run()`` of its own that only evaluates is a different thing: it trains nothing.

Pattern seen in a public paper-implementations repository (recorded in the real-code manifest); this script is
written for the corpus.
"""

import torch
import torch.nn as nn
from labml import experiment
from labml_helpers.train_valid import SimpleTrainValidConfigs
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


class SmallConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 16, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3), nn.ReLU())
        self.classifier = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(32 * 11 * 11, 10))

    def forward(self, x):
        return self.classifier(self.features(x))


class Configs(SimpleTrainValidConfigs):
    batch_size: int = 64

    def init(self):
        tf = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
        self.train_loader = DataLoader(datasets.MNIST("data", train=True, download=True, transform=tf),
                                       batch_size=self.batch_size, shuffle=True)
        self.valid_loader = DataLoader(datasets.MNIST("data", train=False, download=True, transform=tf),
                                       batch_size=self.batch_size)
        self.model = SmallConvNet().to(self.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=1e-3)
        self.loss_func = nn.CrossEntropyLoss()


class Report:
    def __init__(self, conf: Configs):
        self.conf = conf

    @torch.no_grad()
    def run(self):
        self.conf.model.eval()
        return sum((self.conf.model(x).argmax(-1) == y).sum().item() for x, y in self.conf.valid_loader)


conf = Configs()
experiment.create(name="mnist_convnet")
experiment.configs(conf, {"epochs": 5})
with experiment.start():
    conf.run()  # expect: SAN401
report = Report(conf)
print(report.run())
