"""Query embeddings from a frozen encoder, computed under ``@torch.no_grad()``.

This project is written for the corpus.
"""

import torch
from transformers import AutoModel, AutoTokenizer


class QueryEncoder:
    def __init__(self, name: str = "bert-base-uncased"):
        self.tokenizer = AutoTokenizer.from_pretrained(name)
        self.encoder = AutoModel.from_pretrained(name)

    @torch.no_grad()
    def encode(self, queries):
        tokens = self.tokenizer(queries, return_tensors="pt", padding=True)
        return self.encoder(**tokens).pooler_output
