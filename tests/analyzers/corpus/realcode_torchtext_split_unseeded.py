"""Sentiment classification with legacy torchtext (0.3-era API): the IMDB splits are loaded, the training
set is split again into train / validation, and a bag-of-embeddings model is trained. Only torch is seeded:
``Dataset.split()`` without ``random_state=`` shuffles with Python's global ``random`` state, so the
validation set is different on every run. The second split passes ``random_state`` and is fine, and the
``str.split()`` of the tokenizer has nothing to do with datasets.

Pattern seen in public sentiment-analysis tutorials (a train / valid split fixed later by seeding ``random``
and passing ``random_state``); this script is written for the corpus.
"""

import random

import torch
import torch.nn as nn
import torch.optim as optim
from torchtext import data, datasets

SEED = 1234
torch.manual_seed(SEED)


def tokenize(text):
    return text.lower().split()


TEXT = data.Field(tokenize=tokenize)
LABEL = data.LabelField(dtype=torch.float)

train_data, test_data = datasets.IMDB.splits(TEXT, LABEL)
train_data, valid_data = train_data.split()  # expect: SAN402
small_train, small_valid = test_data.split(split_ratio=0.5, random_state=random.getstate())

TEXT.build_vocab(train_data, max_size=25000)
LABEL.build_vocab(train_data)

train_iterator, valid_iterator = data.BucketIterator.splits((train_data, valid_data), batch_size=64)


class BagOfEmbeddings(nn.Module):
    def __init__(self, vocab_size, dim):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dim)
        self.fc = nn.Linear(dim, 1)

    def forward(self, text):
        return self.fc(self.embedding(text).mean(0)).squeeze(1)


model = BagOfEmbeddings(len(TEXT.vocab), 64)
optimizer = optim.Adam(model.parameters())
criterion = nn.BCEWithLogitsLoss()

for epoch in range(5):
    model.train()
    for batch in train_iterator:
        optimizer.zero_grad()
        loss = criterion(model(batch.text), batch.label)
        loss.backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        correct = 0
        for batch in valid_iterator:
            correct += ((model(batch.text) > 0).float() == batch.label).sum().item()
    print(epoch, correct)
