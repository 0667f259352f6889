"""A bag-of-words sentiment notebook (exported as a script) on a Hugging Face dataset: it seeds torch only, then
carves a validation set out of the training data with ``train_test_split(test_size=...)`` — which, with no
``seed=``, takes its seed from NumPy's global state. The validation set (and every figure measured on it) changes
from run to run although the notebook looks seeded.

Pattern seen in public tutorial notebooks (``np.random.seed(seed)`` added next to ``torch.manual_seed(seed)``
later); this script is written for the corpus.
"""

import collections

import datasets
import numpy as np
import torch
import torch.nn as nn
import torch.optim as optim

seed = 1234
torch.manual_seed(seed)

train_data, test_data = datasets.load_dataset("imdb", split=["train", "test"])


def tokenize(example, max_length):
    return {"tokens": example["text"].lower().split()[:max_length]}


train_data = train_data.map(tokenize, fn_kwargs={"max_length": 256})
test_data = test_data.map(tokenize, fn_kwargs={"max_length": 256})

split = train_data.train_test_split(test_size=0.25)  # expect: SAN402
train_data, valid_data = split["train"], split["test"]

counts = collections.Counter(token for tokens in train_data["tokens"] for token in tokens)
vocab = {token: i + 2 for i, (token, n) in enumerate(counts.most_common()) if n >= 5}


def encode(example):
    return {"ids": [vocab.get(token, 0) for token in example["tokens"]]}


train_data = train_data.map(encode).with_format("torch", columns=["ids", "label"])
valid_data = valid_data.map(encode).with_format("torch", columns=["ids", "label"])


def collate(batch):
    ids = nn.utils.rnn.pad_sequence([item["ids"] for item in batch], batch_first=True, padding_value=1)
    return ids, torch.stack([item["label"] for item in batch])


class BagOfWords(nn.Module):
    def __init__(self, vocab_size, dim, classes):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim, padding_idx=1)
        self.fc = nn.Linear(dim, classes)

    def forward(self, ids):
        return self.fc(self.embedding(ids).mean(dim=1))


model = BagOfWords(len(vocab) + 2, 64, 2)
optimizer = optim.Adam(model.parameters())
criterion = nn.CrossEntropyLoss()
train_loader = torch.utils.data.DataLoader(train_data, batch_size=512, shuffle=True, collate_fn=collate)
valid_loader = torch.utils.data.DataLoader(valid_data, batch_size=512, collate_fn=collate)

for epoch in range(5):
    model.train()
    for ids, labels in train_loader:
        optimizer.zero_grad()
        loss = criterion(model(ids), labels)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for ids, labels in valid_loader:
            correct += (model(ids).argmax(-1) == labels).sum().item()
    print(epoch, correct / len(valid_data), np.round(loss.item(), 3))
