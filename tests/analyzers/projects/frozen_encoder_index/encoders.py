"""Passage embeddings for a retrieval index from a frozen pretrained encoder. ``PassageEncoder`` is a plain class
(not an ``nn.Module``) that loads a Hugging Face encoder with ``from_pretrained`` and runs it in ``__call__``;
nothing in the project trains it, optimizes it or hands its parameters on, and no caller disables gradients, so
every call records the autograd graph of a 110M-parameter encoder (SAN202 on ``__call__``). ``Reranker`` loads
its model the same way but hands its parameters to be fine-tuned (``parameters()``): left alone. The tokenizer
calls are not forward passes.

Pattern seen in public retrieval code (a frozen BERT computing chunk embeddings for a nearest-neighbour index,
in a class of its own, used from a sibling module); this project is written for the corpus.
"""

import torch
from transformers import AutoModel, AutoTokenizer


class PassageEncoder:
    def __init__(self, device: torch.device, name: str = "bert-base-uncased"):
        self.tokenizer = AutoTokenizer.from_pretrained(name)
        self.model = AutoModel.from_pretrained(name)
        self.model = self.model.to(device)
        self.device = device

    def __call__(self, passages):  # expect: SAN202
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
