"""Shared configuration for sequence-model experiments, on a configuration framework (labml's): the framework's
``TrainValidConfigs.run()`` calls ``step()`` on every batch of the training loader, epoch after epoch, and on the
validation loader with gradients off, and ``sample()`` in between, with gradients on: the samples below build an
autograd graph for every token. Experiments subclass this class and only pick a model.

Pattern seen in a public paper-implementations repository (recorded in the real-code manifest); this project is
written for the corpus.
"""

import torch
import torch.nn as nn
from labml_helpers.train_valid import BatchIndex, TrainValidConfigs


class SequenceConfigs(TrainValidConfigs):
    model: nn.Module
    optimizer: torch.optim.Optimizer
    loss_func = nn.CrossEntropyLoss()
    n_tokens: int = 96
    grad_norm_clip: float = 1.0

    def step(self, batch, batch_idx: BatchIndex):
        self.model.train(self.mode.is_train)
        data, target = batch[0].to(self.device), batch[1].to(self.device)
        output, _ = self.model(data)
        loss = self.loss_func(output.view(-1, output.shape[-1]), target.view(-1))
        if self.mode.is_train:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=self.grad_norm_clip)
            self.optimizer.step()
            self.optimizer.zero_grad()

    def sample(self):  # expect: SAN202
        """Greedy samples from a fixed prompt, logged between training and validation."""
        prompt = self.prompt
        for _ in range(25):
            data = self.text.text_to_i(prompt).unsqueeze(-1).to(self.device)
            output, *_ = self.model(data)
            prompt += self.text.itos[output.argmax(dim=-1).squeeze()[-1]]
        print(prompt)
