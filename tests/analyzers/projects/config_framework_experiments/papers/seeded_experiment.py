"""The same kind of experiment, seeded before the configuration runs: reproducible, nothing to report."""

import torch
import torch.nn as nn
from labml import experiment

from papers.sequence_configs import SequenceConfigs


class Configs(SequenceConfigs):
    def init(self):
        self.model = nn.LSTM(self.n_tokens, 128).to(self.device)


def main():
    torch.manual_seed(5)
    conf = Configs()
    experiment.create(name="lstm")
    experiment.configs(conf, {"epochs": 8})
    with experiment.start():
        conf.run()


if __name__ == "__main__":
    main()
