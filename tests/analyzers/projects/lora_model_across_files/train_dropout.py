"""The same fine-tuning with ``DropoutGPT``: its residual dropout keeps dropping in the test loop, which never
calls ``model.eval()``, so the test loss is measured on a noisy model. ``StackOf`` runs blocks handed to it,
which the rule cannot see: its test loop is reported too."""

import torch
from torch.utils.data import DataLoader, TensorDataset, random_split

from gpt import DropoutGPT, StackOf

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


def test(model):  # expect: SAN201, SAN202
    with torch.autocast("cpu"):
        total = 0.0
        for (batch,) in test_loader:
            logits = model(batch[:, :-1])
            total += criterion(logits.reshape(-1, logits.size(-1)), batch[:, 1:].reshape(-1)).item()
    return total / len(test_loader)


fit(DropoutGPT(), 3)


def evaluate_stack(model):  # expect: SAN201, SAN202
    total = 0.0
    for (batch,) in test_loader:
        total += model(batch.float()).sum().item()
    return total


stack = StackOf(make_blocks())
stack.train()
evaluate_stack(stack)
