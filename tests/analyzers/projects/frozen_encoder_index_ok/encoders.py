"""The encoders of ``frozen_encoder_index``, called the right way: the index builder runs ``PassageEncoder``
under ``torch.no_grad()`` (``queries.py``'s ``QueryEncoder.encode`` is decorated with it). Nothing is reported.

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


class Reranker:
    def __init__(self, name: str = "cross-encoder-base"):
        self.cross_encoder = AutoModel.from_pretrained(name)

    def trainable(self):
        return list(self.cross_encoder.parameters())

    def score(self, pairs):
        return self.cross_encoder(**pairs).last_hidden_state[:, 0]

