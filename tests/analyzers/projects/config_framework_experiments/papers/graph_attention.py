"""A graph-attention experiment whose configuration class is a plain configuration (not the framework's
training configuration) with a training loop of its own in ``run()``. This module only defines it: the runs
are started by the modules that import it.
"""

import torch
import torch.nn as nn
from labml.configs import BaseConfigs


class GraphConfigs(BaseConfigs):
    epochs: int = 500
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_func = nn.CrossEntropyLoss()

    def run(self):
        features, adj, labels, train_idx = self.dataset.features, self.dataset.adj, self.dataset.labels, self.train_idx
        for epoch in range(self.epochs):
            self.model.train()
            self.optimizer.zero_grad()
            output = self.model(features, adj)
            loss = self.loss_func(output[train_idx], labels[train_idx])
            loss.backward()
            self.optimizer.step()
            self.validate(features, adj, labels)

    @torch.no_grad()
    def validate(self, features, adj, labels):
        self.model.eval()
        output = self.model(features, adj)
        return (output[self.valid_idx].argmax(-1) == labels[self.valid_idx]).float().mean().item()
