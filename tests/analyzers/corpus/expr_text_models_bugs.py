"""Text classification and multi-label tagging with loss-pairing, init and tensor-plumbing mistakes."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
device = torch.device("cuda")


class BagOfWords(nn.Module):
    def __init__(self, vocab, dim, classes):
        super().__init__()
        self.emb = nn.EmbeddingBag(vocab, dim)
        self.hidden = nn.Linear(dim, dim)
        self.out = nn.Linear(dim, classes)
        self.apply(self.init_weights)

    def init_weights(self, m):
        if isinstance(m, nn.Linear):
            nn.init.zeros_(m.weight)  # expect: SAN702
            nn.init.zeros_(m.bias)

    def forward(self, tokens, offsets):
        h = F.relu(self.hidden(self.emb(tokens, offsets)))
        return self.out(h)


class Tagger(nn.Module):
    def __init__(self, dim, tags):
        super().__init__()
        self.rnn = nn.GRU(dim, dim, batch_first=True)
        self.head = nn.Linear(dim, tags)

    def forward(self, x):
        out, _ = self.rnn(x)                 # (B, T, D)
        scores = self.head(out)              # (B, T, tags)
        scores = scores.permute(0, 2, 1)     # (B, tags, T)
        return scores.view(scores.size(0), -1)  # expect: SAN302


def run_epoch(model, loader, optimizer):
    model.train()
    for tokens, offsets, labels in loader:
        optimizer.zero_grad()
        logits = model.forward(tokens, offsets)  # expect: SAN703
        loss = F.nll_loss(logits, labels)  # expect: SAN602
        loss.backward()
        optimizer.step()


classifier = BagOfWords(20000, 64, 4).to(device)
opt = torch.optim.SGD(classifier.parameters(), lr=0.5)
tokens = torch.randint(0, 20000, (512,))
offsets = torch.arange(0, 512, 8)
labels = torch.randint(0, 4, (64,))
loader = [(tokens, offsets, labels)]
for epoch in range(5):
    run_epoch(classifier, loader, opt)

x = torch.randn(256, 16, 32)
y = (torch.rand(256, 16, 7) > 0.8).float()
x.cuda()  # expect: SAN901
tagger = Tagger(32, 7)
tag_loss = nn.BCEWithLogitsLoss()
tag_opt = torch.optim.AdamW(tagger.parameters(), lr=1e-3)
train_loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
for epoch in range(3):
    tagger.train()
    for xb, yb in train_loader:
        tag_opt.zero_grad()
        probs = torch.sigmoid(tagger.head(tagger.rnn(xb)[0]))
        loss = tag_loss(probs, yb)  # expect: SAN603
        loss.backward()
        tag_opt.step()

lang_head = nn.Linear(32, 100)
ce = nn.CrossEntropyLoss()
feats = torch.randn(8, 32)
targets = torch.randint(0, 100, (8,))
log_probs = F.log_softmax(lang_head(feats), dim=-1)
aux_loss = ce(log_probs, targets)  # expect: SAN601
