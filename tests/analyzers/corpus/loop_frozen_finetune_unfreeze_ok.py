"""Gradual unfreezing of a pretrained text classifier (ULMFiT style): the encoder starts frozen and the
optimizer is built over every parameter at once; blocks are unfrozen epoch by epoch, and the optimizer,
which already holds them, starts updating each one as soon as it gets gradients. Nothing is reported."""

import torch
import torch.nn as nn
from torch.utils.data import DataLoader
from transformers import AutoModelForSequenceClassification, AutoTokenizer


def freeze_encoder(model):
    for param in model.base_model.parameters():
        param.requires_grad = False


def main():
    torch.manual_seed(13)
    tokenizer = AutoTokenizer.from_pretrained("distilbert-base-uncased")
    model = AutoModelForSequenceClassification.from_pretrained("distilbert-base-uncased", num_labels=2)

    for param in model.base_model.parameters():
        param.requires_grad = False
    optimizer = torch.optim.AdamW(model.base_model.parameters(), lr=2e-5)
    head_optimizer = torch.optim.AdamW(model.classifier.parameters(), lr=1e-3)

    texts = ["a fine film", "a dull film"] * 64
    labels = torch.tensor([1, 0] * 64)
    batch = tokenizer(texts, padding=True, truncation=True, return_tensors="pt")
    dataset = list(zip(batch["input_ids"], batch["attention_mask"], labels))
    train_loader = DataLoader(dataset, batch_size=16, shuffle=True)

    blocks = list(model.base_model.transformer.layer)
    for epoch in range(len(blocks)):
        blocks[len(blocks) - 1 - epoch].requires_grad_(True)
        model.train()
        for input_ids, attention_mask, target in train_loader:
            optimizer.zero_grad()
            head_optimizer.zero_grad()
            loss = nn.functional.cross_entropy(model(input_ids=input_ids, attention_mask=attention_mask).logits, target)
            loss.backward()
            optimizer.step()
            head_optimizer.step()
        print(f"epoch {epoch}: loss {loss.item():.4f}")


if __name__ == "__main__":
    main()
