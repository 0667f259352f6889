"""The second version of the graph-attention experiment: ``Configs`` extends the first version's configuration
class from a sibling module and inherits its training loop (``run()``). Nothing seeds torch."""

import torch.nn as nn

from papers.graph_attention import GraphConfigs


class GraphAttentionV2(nn.Module):
    def __init__(self, in_features: int, n_classes: int, n_hidden: int = 64):
        super().__init__()
        self.layer = nn.Linear(in_features, n_hidden)
        self.dropout = nn.Dropout(0.6)
        self.output = nn.Linear(n_hidden, n_classes)

    def forward(self, x, adj):
        return self.output(self.dropout(adj @ self.layer(x)))


class Configs(GraphConfigs):
    share_weights: bool = False


def main():
    conf = Configs()
    conf.run()


if __name__ == "__main__":
    main()  # expect: SAN401
