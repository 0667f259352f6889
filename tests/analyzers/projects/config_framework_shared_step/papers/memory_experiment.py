"""An experiment that overrides ``step()`` to carry recurrent memories, with its model built here
(``@option(Configs.model)``) and dropout configured to 0.0: the rule cannot read the configuration, so a step
that sets no mode next to the model it builds is left alone."""

import torch
import torch.nn as nn
from labml.configs import option
from labml_helpers.train_valid import BatchIndex

from papers.classification_configs import ClassificationConfigs


class MemoryClassifier(nn.Module):
    def __init__(self, n_tokens: int, d_model: int, n_classes: int, dropout: float):
        super().__init__()
        self.embed = nn.Embedding(n_tokens, d_model)
        self.rnn = nn.GRU(d_model, d_model)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(d_model, n_classes)

    def forward(self, x, memory=None):
        h, memory = self.rnn(self.drop(self.embed(x)), memory)
        return self.head(h[-1]), memory


class Configs(ClassificationConfigs):
    d_model: int = 128
    dropout: float = 0.0
    memory = None

    def step(self, batch, batch_idx: BatchIndex):
        data, target = batch[0].to(self.device), batch[1].to(self.device)
        output, self.memory = self.model(data, self.memory)
        self.memory = self.memory.detach()
        loss = self.loss_func(output, target)
        if self.mode.is_train:
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()


@option(Configs.model)
def _memory_model(c: Configs):
    return MemoryClassifier(c.n_tokens, c.d_model, c.n_classes, c.dropout).to(c.device)
