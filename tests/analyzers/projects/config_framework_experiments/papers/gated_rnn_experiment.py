"""A gated-RNN language-model experiment: ``Configs`` derives from the shared ``SequenceConfigs`` of a sibling
module, whose framework base runs the training loop when ``main()`` calls ``conf.run()``. Nothing seeds torch,
so the initial weights and the batch order change on every run.
"""

import torch.nn as nn
from labml import experiment

from papers.sequence_configs import SequenceConfigs


class GatedRNN(nn.Module):
    def __init__(self, n_tokens: int, d_model: int = 256):
        super().__init__()
        self.embed = nn.Embedding(n_tokens, d_model)
        self.rnn = nn.GRU(d_model, d_model, num_layers=2, dropout=0.1)
        self.head = nn.Linear(d_model, n_tokens)

    def forward(self, x):
        out, state = self.rnn(self.embed(x))
        return self.head(out), state


class Configs(SequenceConfigs):
    d_model: int = 256

    def init(self):
        self.model = GatedRNN(self.n_tokens, self.d_model).to(self.device)


class LayerConfigs:
    n_layers: int = 2
    dropout: float = 0.1


def layer_configs(c: Configs):
    conf = LayerConfigs()  # another `conf`, of another class, in another function
    conf.n_layers = 4 if c.d_model > 256 else 2
    return conf


def main():
    experiment.create(name="gated_rnn")
    conf = Configs()
    experiment.configs(conf, {"optimizer.learning_rate": 2.5e-4, "epochs": 32})
    experiment.add_pytorch_models({"model": conf.model})
    with experiment.start():
        conf.run()


if __name__ == "__main__":
    main()  # expect: SAN401
