"""Sentiment classification written for PyTorch 0.3 and torchtext 0.2: the test iterator of
`BucketIterator.splits` builds volatile batches (autograd off), and losses are read with `.data[0]`.
The evaluation loop needs no `torch.no_grad()` in that era (annotated: nothing to report but the seed)."""

import torch
import torch.nn as nn
import torch.optim as optim
from torchtext import data, datasets

TEXT = data.Field(tokenize="spacy")
LABEL = data.LabelField(tensor_type=torch.FloatTensor)
train, test = datasets.IMDB.splits(TEXT, LABEL)
TEXT.build_vocab(train, max_size=25000)
LABEL.build_vocab(train)

train_iter, test_iter = data.BucketIterator.splits(
    (train, test), batch_size=64, sort_key=lambda ex: len(ex.text), repeat=False)


class RNN(nn.Module):
    def __init__(self, vocab_size, embedding_dim=100, hidden_dim=256):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, embedding_dim)
        self.rnn = nn.LSTM(embedding_dim, hidden_dim)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(hidden_dim, 1)

    def forward(self, text):
        output, (hidden, cell) = self.rnn(self.dropout(self.embedding(text)))
        return self.fc(self.dropout(hidden[-1])).squeeze(1)


model = RNN(len(TEXT.vocab))
optimizer = optim.Adam(model.parameters())
criterion = nn.BCEWithLogitsLoss()

for epoch in range(5):
    model.train()
    epoch_loss = 0
    for batch in train_iter:
        optimizer.zero_grad()
        loss = criterion(model(batch.text), batch.label)
        loss.backward()  # expect: SAN401
        optimizer.step()
        epoch_loss += loss.data[0]

    model.eval()
    test_loss = 0
    for batch in test_iter:
        loss = criterion(model(batch.text), batch.label)
        test_loss += loss.data[0]
    print(epoch, epoch_loss / len(train_iter), test_loss / len(test_iter))
