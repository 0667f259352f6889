"""Fine-tunes the passage encoder with a classification head: the encoder's parameters are optimized."""

import torch
import torch.nn.functional as F

from encoders import PassageEncoder


def finetune(loader, epochs: int = 3):
    torch.manual_seed(0)
    encoder = PassageEncoder(torch.device("cuda" if torch.cuda.is_available() else "cpu"))
    head = torch.nn.Linear(768, 2).to(encoder.device)
    optimizer = torch.optim.AdamW([*encoder.model.parameters(), *head.parameters()], lr=2e-5)
    for _ in range(epochs):
        for passages, labels in loader:
            loss = F.cross_entropy(head(encoder(passages)), labels.to(encoder.device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    return encoder, head
