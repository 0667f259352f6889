"""Semi-supervised node classification with a two-layer GCN (Kipf & Welling), full-batch over one graph of two
communities: the model takes the node features and the normalised adjacency — or, with --edge-index, an edge
list aggregated with index_add_ as message-passing libraries do. Mixing nodes is what the model is for."""

import argparse

import torch
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--edge-index", action="store_true")
args = parser.parse_args()

torch.manual_seed(0)
nodes, features = 60, 8
labels = (torch.arange(nodes) >= nodes // 2).long()
same = labels[:, None] == labels[None, :]
adjacency = (torch.rand(nodes, nodes) < torch.where(same, 0.3, 0.02)).float()
adjacency = ((adjacency + adjacency.t()) > 0).float().fill_diagonal_(1.0)
degree = adjacency.sum(1)
norm_adj = adjacency / degree.sqrt()[:, None] / degree.sqrt()[None, :]
edge_index = adjacency.nonzero().t().contiguous()  # (2, E)
x = torch.randn(nodes, features) + labels[:, None].float()
train_mask = torch.zeros(nodes, dtype=torch.bool)
train_mask[::3] = True


def propagate(h, graph):
    if graph.dim() == 2 and graph.shape[0] == 2 and not graph.is_floating_point():
        src, dst = graph
        weight = (degree[src] * degree[dst]).rsqrt()[:, None]
        return torch.zeros_like(h).index_add_(0, dst, h[src] * weight)
    return graph @ h


class GCN(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin1 = nn.Linear(features, 16)
        self.lin2 = nn.Linear(16, 2)

    def forward(self, h, graph):
        h = torch.relu(propagate(self.lin1(h), graph))
        return self.lin2(propagate(h, graph))


model = GCN()
optimizer = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
graph = edge_index if args.edge_index else norm_adj
for epoch in range(50):
    optimizer.zero_grad()
    out = model(x, graph)
    loss = nn.functional.cross_entropy(out[train_mask], labels[train_mask])
    loss.backward()
    optimizer.step()
