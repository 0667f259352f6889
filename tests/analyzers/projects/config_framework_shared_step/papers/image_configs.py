"""Shared configuration for image experiments whose ``step()`` sets the model's mode from the phase, as the
framework expects: nothing is reported."""

import torch.nn as nn
from labml_helpers.train_valid import BatchIndex, TrainValidConfigs


class ImageConfigs(TrainValidConfigs):
    model: nn.Module
    loss_func = nn.CrossEntropyLoss()

    def step(self, batch, batch_idx: BatchIndex):
        self.model.train(self.mode.is_train)
        data, target = batch[0].to(self.device), batch[1].to(self.device)
        loss = self.loss_func(self.model(data), target)
        if self.mode.is_train:
            loss.backward()
            self.optimizer.step()
            self.optimizer.zero_grad()
