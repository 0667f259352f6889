"""A trainer that runs train and val phases through one loop, switching the modules' mode per phase: the val
branch was typed as train() (the twin trainer below switches to eval())."""

import torch
import torch.nn as nn


class Seq2SeqTrainer:
    def __init__(self, encoder: nn.Module, decoder: nn.Module, lr: float = 1e-3) -> None:
        self.encoder, self.decoder = encoder, decoder
        params = list(encoder.parameters()) + list(decoder.parameters())
        self.optimizer = torch.optim.Adam(params, lr=lr)
        self.criterion = nn.CrossEntropyLoss()

    def set_phase(self, phase: str) -> None:
        if phase == "train":
            self.encoder.train()
            self.decoder.train()
        else:
            self.encoder.train()  # expect: SAN201
            self.decoder.train()

    def run_epoch(self, loader, phase: str) -> float:
        self.set_phase(phase)
        total = 0.0
        with torch.set_grad_enabled(phase == "train"):
            for src, tgt in loader:
                logits = self.decoder(self.encoder(src))
                loss = self.criterion(logits.flatten(0, 1), tgt.flatten())
                if phase == "train":
                    self.optimizer.zero_grad()
                    loss.backward()
                    self.optimizer.step()
                total += loss.item()
        return total / max(len(loader), 1)


class FixedTrainer(Seq2SeqTrainer):
    def set_phase(self, phase: str) -> None:
        if phase == "train":
            self.encoder.train()
            self.decoder.train()
        else:
            self.encoder.eval()
            self.decoder.eval()
