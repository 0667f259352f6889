"""A text classifier whose head builds its criterion in a helper method and picks the output normalisation
by configuration. Two losses are fed probabilities where they expect logits: the criterion returned by
``_build_criterion()`` is a ``CrossEntropyLoss``, and ``probabilities()`` applies softmax in every branch of
its ``if`` / ``elif`` / ``else`` (used by ``loss()`` and by the script's evaluation of a held-out batch). The
auxiliary BCE head applies sigmoid in one branch only (the other passes logits), which is left alone, and
``Calibrator`` returns logits from its helper.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)


class Head(nn.Module):
    def __init__(self, dim, classes, mode):
        super().__init__()
        self.fc = nn.Linear(dim, classes)
        self.aux = nn.Linear(dim, 1)
        self.mode = mode
        self.criterion = self._build_criterion()

    def _build_criterion(self):
        return nn.CrossEntropyLoss(label_smoothing=0.1)

    def forward(self, x):
        return self.fc(x)

    def probabilities(self, x, temperature=1.0):
        logits = self.fc(x)
        if self.mode == "plain":
            probs = F.softmax(logits, dim=-1)
        elif self.mode == "tempered":
            probs = F.softmax(logits / temperature, dim=-1)
        else:
            probs = logits.softmax(-1)
        return probs

    def aux_scores(self, x, squash):
        if squash:
            scores = torch.sigmoid(self.aux(x))
        else:
            scores = self.aux(x)
        return scores.squeeze(-1)

    def loss(self, x, y):
        probs = self.probabilities(x)
        return self.criterion(probs, y)  # expect: SAN601


class Calibrator:
    def __init__(self, head):
        self.head = head
        self.criterion = self._criterion()

    def _criterion(self):
        return nn.CrossEntropyLoss()

    def _logits(self, x):
        return self.head(x)

    def loss(self, x, y):
        logits = self._logits(x)
        return self.criterion(logits, y)


head = Head(32, 5, "tempered")
optimizer = torch.optim.AdamW(head.parameters(), lr=1e-3)
aux_criterion = nn.BCEWithLogitsLoss()
for _ in range(10):
    x, y, flags = torch.randn(8, 32), torch.randint(0, 5, (8,)), torch.rand(8)
    optimizer.zero_grad()
    loss = head.loss(x, y) + aux_criterion(head.aux_scores(x, squash=True), flags)
    loss.backward()
    optimizer.step()

held_out = torch.randn(16, 32)
probs = head.probabilities(held_out)
print(F.cross_entropy(probs, torch.randint(0, 5, (16,))).item())  # expect: SAN601
print(Calibrator(head).loss(torch.randn(4, 32), torch.randint(0, 5, (4,))))
