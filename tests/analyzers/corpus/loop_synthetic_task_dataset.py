"""A synthetic parity task: every item is drawn fresh, so the training loader has nothing to shuffle;
the recorded test set is a fixed tensor and its loader rightly keeps the order (nothing to report)."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, TensorDataset


class ParityTask(Dataset):
    def __init__(self, n_samples, n_elems):
        self.n_samples = n_samples
        self.n_elems = n_elems

    def __len__(self):
        return self.n_samples

    def __getitem__(self, idx):
        x = torch.zeros(self.n_elems)
        n_non_zero = torch.randint(1, self.n_elems + 1, (1,)).item()
        x[:n_non_zero] = torch.randint(0, 2, (n_non_zero,)) * 2 - 1
        x = x[torch.randperm(self.n_elems)]
        return x, (x == 1.0).sum() % 2


def main(n_elems=64, batch_size=128, epochs=10):
    torch.manual_seed(0)
    train_loader = DataLoader(ParityTask(batch_size * 500, n_elems), batch_size=batch_size)
    test_x = torch.load("parity_test_x.pt")
    test_loader = DataLoader(TensorDataset(test_x, test_x.eq(1).sum(1) % 2), batch_size=batch_size)
    model = nn.GRU(n_elems, 128, batch_first=True)
    head = nn.Linear(128, 1)
    optimizer = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=3e-4)
    for epoch in range(epochs):
        model.train()
        for x, y in train_loader:
            out, _ = model(x.unsqueeze(1))
            loss = F.binary_cross_entropy_with_logits(head(out[:, -1]).squeeze(1), y.float())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for x, y in test_loader:
                out, _ = model(x.unsqueeze(1))
                correct += ((head(out[:, -1]).squeeze(1) > 0).long() == y).sum().item()
        print(epoch, correct / len(test_x))


if __name__ == "__main__":
    main()
