"""Shared configuration for text-classification experiments, on a configuration framework (labml's): the
framework's ``TrainValidConfigs.run()`` calls ``step()`` for every training batch and every validation batch,
``self.mode.is_train`` telling which, and only toggles gradients around it. This ``step()`` never sets the model's
mode, so every experiment deriving from it validates with dropout active (SAN201 on ``step``). Experiments
subclass it and pick a model.

Pattern seen in a public paper-implementations repository (recorded in the real-code manifest, with the commits
that later set the mode from the phase); this project is written for the corpus.
"""

import torch
import torch.nn as nn
from labml import tracker
from labml_helpers.train_valid import BatchIndex, TrainValidConfigs


class ClassificationConfigs(TrainValidConfigs):
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_func = nn.CrossEntropyLoss()
    n_classes: int = 4
    grad_norm_clip: float = 1.0

    def step(self, batch, batch_idx: BatchIndex):  # expect: SAN201
        """Training or validation step."""
        data, target = batch[0].to(self.device), batch[1].to(self.device)
        if self.mode.is_train:
            tracker.add_global_step(target.shape[0])
        output, *_ = self.model(data)
        loss = self.loss_func(output, target)
        tracker.add("loss.", loss)
        if self.mode.is_train:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.grad_norm_clip)
            self.optimizer.step()
            self.optimizer.zero_grad()
        tracker.save()
