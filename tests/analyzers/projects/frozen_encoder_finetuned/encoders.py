"""The passage encoder of ``frozen_encoder_index``, fine-tuned by ``finetune.py`` through its ``__call__``: the
encoder's parameters go to the optimizer there and the loss backpropagates through it, so ``__call__`` is not
inference. Nothing is reported.

This project is written for the corpus.
"""

import torch
from transformers import AutoModel, AutoTokenizer


class PassageEncoder:
    def __init__(self, device: torch.device, name: str = "bert-base-uncased"):
        self.tokenizer = AutoTokenizer.from_pretrained(name)
        self.model = AutoModel.from_pretrained(name)
        self.model = self.model.to(device)
        self.device = device

    def __call__(self, passages):
        tokens = self.tokenizer(passages, return_tensors="pt", padding=True, truncation=True)
        mask = tokens["attention_mask"].to(self.device)
        output = self.model(input_ids=tokens["input_ids"].to(self.device), attention_mask=mask)
        state = output.last_hidden_state
        return (state * mask[:, :, None]).sum(dim=1) / mask[:, :, None].sum(dim=1)
