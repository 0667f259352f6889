"""A sentiment-analysis notebook exported as a script: an LSTM classifier with dropout is trained with
``train()`` (which calls ``model.train()``) and scored with ``evaluate()`` (which calls ``model.eval()`` and
never switches back). Two inference helpers follow, ``predict_sentiment()`` and ``nearest_label()``: neither
calls ``model.eval()``; they get eval mode only because ``evaluate()`` happened to run last, so after one more
training epoch (or a notebook cell run again) they predict with dropout active. ``describe()`` only prints.

Pattern seen in public NLP tutorial notebooks (an inference helper whose later fix added ``model.eval()``
inside it); this script is written for the corpus.
"""

import random

import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim
from torch.utils.data import DataLoader, TensorDataset

SEED = 1234
random.seed(SEED)
np.random.seed(SEED)
torch.manual_seed(SEED)

VOCAB, EMBED, HIDDEN, LABELS = 500, 32, 64, 3
STOI = {word: index for index, word in enumerate(["<pad>", "<unk>", "this", "film", "is", "great", "terrible"])}


class RNNClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(VOCAB, EMBED)
        self.rnn = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(HIDDEN, LABELS)

    def forward(self, text):
        _, (hidden, _) = self.rnn(self.dropout(self.embedding(text)))
        return self.fc(self.dropout(hidden[-1]))


def make_split(n):
    return TensorDataset(torch.randint(2, VOCAB, (n, 20)), torch.randint(0, LABELS, (n,)))


train_iterator = DataLoader(make_split(512), batch_size=64, shuffle=True)
valid_iterator = DataLoader(make_split(128), batch_size=64)
test_iterator = DataLoader(make_split(128), batch_size=64)

model = RNNClassifier()
optimizer = optim.Adam(model.parameters())
criterion = nn.CrossEntropyLoss()


def train(model, iterator, optimizer, criterion):
    epoch_loss = 0.0
    model.train()
    for text, label in iterator:
        optimizer.zero_grad()
        loss = criterion(model(text), label)
        loss.backward()
        optimizer.step()
        epoch_loss += loss.item()
    return epoch_loss / len(iterator)


def evaluate(model, iterator, criterion):
    epoch_loss = 0.0
    model.eval()
    with torch.no_grad():
        for text, label in iterator:
            epoch_loss += criterion(model(text), label).item()
    return epoch_loss / len(iterator)


best_valid_loss = float("inf")
for epoch in range(5):
    train_loss = train(model, train_iterator, optimizer, criterion)
    valid_loss = evaluate(model, valid_iterator, criterion)
    if valid_loss < best_valid_loss:
        best_valid_loss = valid_loss
        torch.save(model.state_dict(), "tut-model.pt")
    print(f"Epoch: {epoch + 1:02} | Train Loss: {train_loss:.3f} | Val. Loss: {valid_loss:.3f}")

model.load_state_dict(torch.load("tut-model.pt"))
test_loss = evaluate(model, test_iterator, criterion)
print(f"Test Loss: {test_loss:.3f}")


def predict_sentiment(sentence):  # expect: SAN201
    indexed = [STOI.get(token, 1) for token in sentence.lower().split()]
    tensor = torch.LongTensor(indexed).unsqueeze(0)
    with torch.no_grad():
        prediction = torch.softmax(model(tensor), dim=-1)
    return prediction.argmax(-1).item()


def nearest_label(model, sentences):  # expect: SAN201
    batch = torch.LongTensor([[STOI.get(token, 1) for token in s.lower().split()] for s in sentences])
    with torch.no_grad():
        return model(batch).argmax(-1).tolist()


def describe(sentence, label):
    print(f"{sentence!r} -> class {label}")


describe("This film is terrible", predict_sentiment("This film is terrible"))
describe("This film is great", predict_sentiment("This film is great"))
print(nearest_label(model, ["this film is great", "this film is terrible"]))
