"""Activations that reach a loss through a helper function, a tuple returned by forward, a model class and an
attribute: each pairing is a bug of the catalog, wherever the softmax / sigmoid was applied (annotated)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset


class TwoHeaded(nn.Module):
    """Returns the class probabilities for the metrics and the logits for the loss."""

    def __init__(self, features=32, classes=5):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(features, 64), nn.ReLU())
        self.head = nn.Linear(64, classes)

    def forward(self, x):
        logits = self.head(self.body(x))
        return F.softmax(logits, dim=-1), logits


class Tagger(nn.Module):
    def __init__(self, features=32, tags=8):
        super().__init__()
        self.proj = nn.Linear(features, tags)

    def forward(self, x):
        return torch.sigmoid(self.proj(x))


class LogProbClassifier(nn.Module):
    def __init__(self, features=32, classes=5):
        super().__init__()
        self.fc = nn.Linear(features, classes)

    def forward(self, x):
        scores = self.fc(x)
        return F.log_softmax(scores, dim=1), scores


def class_probabilities(model, x):
    return F.softmax(model(x)[1], dim=-1)


def log_probabilities(model, x):
    return F.log_softmax(model(x)[1], dim=-1)


class TaggerTrainer:
    """The model and the loss live in attributes set in __init__ and meet in another method."""

    def __init__(self, lr=0.01):
        self.model = Tagger()
        self.loss_fn = nn.BCEWithLogitsLoss()
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr)

    def train_step(self, x, tags):
        self.optimizer.zero_grad()
        scores = self.model(x)
        loss = self.loss_fn(scores, tags)  # expect: SAN603
        loss.backward()
        self.optimizer.step()
        return loss.item()


def main():
    torch.manual_seed(7)
    data = TensorDataset(torch.randn(256, 32), torch.randint(0, 5, (256,)), torch.rand(256, 8).round())
    loader = DataLoader(data, batch_size=32, shuffle=True)
    classifier, tagger, log_model = TwoHeaded(), Tagger(), LogProbClassifier()
    params = [*classifier.parameters(), *tagger.parameters(), *log_model.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.05)
    cross_entropy = nn.CrossEntropyLoss()
    multilabel = nn.BCEWithLogitsLoss()
    nll = nn.NLLLoss()
    for epoch in range(5):
        for x, labels, tags in loader:
            optimizer.zero_grad()
            probs, logits = classifier(x)
            wrong = cross_entropy(probs, labels)  # expect: SAN601
            right = cross_entropy(logits, labels)
            helper_probs = class_probabilities(classifier, x)
            twice = cross_entropy(helper_probs, labels)  # expect: SAN601
            tag_loss = multilabel(tagger(x), tags)  # expect: SAN603
            log_probs, raw = log_model(x)
            good_nll = nll(log_probs, labels)
            helper_nll = nll(log_probabilities(classifier, x), labels)
            bad_nll = nll(raw, labels)  # expect: SAN602
            (wrong + right + twice + tag_loss + good_nll + helper_nll + bad_nll).backward()
            optimizer.step()
            TaggerTrainer().train_step(x, tags)


if __name__ == "__main__":
    main()
