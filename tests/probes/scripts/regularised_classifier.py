"""A classifier regularised the usual way: heavy dropout and AdamW's weight decay. Memorising one batch needs both
turned off (Karpathy's "overfit one batch" step); the probe does that on its copies and says so."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)
x = torch.randn(512, 16)
y = torch.randint(0, 5, (512,))  # no signal to learn: a batch can only be memorised
loader = DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)
model = nn.Sequential(nn.Linear(16, 128), nn.ReLU(), nn.Dropout(0.7), nn.Linear(128, 128), nn.ReLU(),
                      nn.Dropout(0.7), nn.Linear(128, 5))
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.5)
criterion = nn.CrossEntropyLoss()

for epoch in range(2):
    model.train()
    for xb, yb in loader:
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
