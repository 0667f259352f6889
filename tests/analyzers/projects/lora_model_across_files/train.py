"""Fine-tune the LoRA GPT on a text file and report the test loss after each epoch. The test loop forgets
``torch.no_grad()`` (a graph is built for every test batch) and never calls ``model.eval()`` — which changes
nothing for ``GPT`` (no dropout, no batch-norm anywhere in gpt.py or lora.py), but does for ``DropoutGPT``."""

import torch
from torch.utils.data import DataLoader, TensorDataset, random_split

from gpt import GPT

torch.manual_seed(0)
ids = torch.load("tokens.pt").view(-1, 512)
train_set, test_set = random_split(TensorDataset(ids), [0.9, 0.1])
train_loader = DataLoader(train_set, batch_size=4, shuffle=True)
test_loader = DataLoader(test_set, batch_size=4)
criterion = torch.nn.CrossEntropyLoss()


def fit(model, epochs):
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-4)
    model.train()
    for epoch in range(epochs):
        for (batch,) in train_loader:
            logits = model(batch[:, :-1])
            loss = criterion(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        print(epoch, test(model))


def test(model):  # expect: SAN202
    total = 0.0
    for (batch,) in test_loader:
        logits = model(batch[:, :-1])
        total += criterion(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1)).item()
    return total / len(test_loader)


fit(GPT(), 3)
