"""An experiment whose configuration carries a seed configuration (labml's ``SeedConfigs``) and applies it with
``conf.set_seed.set()`` before the run: seeded, nothing to report."""

import torch.nn as nn
from labml import experiment
from labml_helpers.seed import SeedConfigs

from papers.sequence_configs import SequenceConfigs


class Configs(SequenceConfigs):
    set_seed = SeedConfigs()

    def init(self):
        self.model = nn.GRU(self.n_tokens, 64).to(self.device)


def main():
    conf = Configs()
    experiment.create(name="seeded_by_configs")
    experiment.configs(conf, {"set_seed.seed": 7})
    conf.set_seed.set()
    with experiment.start():
        conf.run()


if __name__ == "__main__":
    main()
