"""An experiment on the shared classification configuration: a Fourier-mixing encoder with dropout, validated
through the shared ``step()`` (the finding is there, not here)."""

import torch
import torch.nn as nn
from labml import experiment
from labml.configs import option

from papers.classification_configs import ClassificationConfigs


class FNetClassifier(nn.Module):
    def __init__(self, n_tokens: int, d_model: int, n_classes: int, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(n_tokens, d_model)
        self.mix = nn.Sequential(nn.Linear(d_model, d_model), nn.GELU(), nn.Dropout(dropout))
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x):
        h = self.mix(torch.fft.fft(self.embed(x), dim=-1).real)
        return self.head(h.mean(dim=0)), None


class Configs(ClassificationConfigs):
    d_model: int = 256


@option(Configs.model)
def _fnet(c: Configs):
    return FNetClassifier(c.n_tokens, c.d_model, c.n_classes).to(c.device)


def main():
    torch.manual_seed(7)
    conf = Configs()
    experiment.create(name="fnet_classification")
    experiment.configs(conf, {"optimizer.optimizer": "Adam", "optimizer.learning_rate": 2.5e-4})
    with experiment.start():
        conf.run()


if __name__ == "__main__":
    main()
