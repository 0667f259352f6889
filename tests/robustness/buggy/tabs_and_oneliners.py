# Training code written with tabs, one-line bodies and comments in awkward places: the fixes must keep
# the file parseable and the indentation consistent.
import random

import numpy as np
import torch
from torch import nn, optim
from torch.utils.data import DataLoader, TensorDataset

torch.manual_seed(0)

data = TensorDataset(torch.randn(64, 8), torch.randint(0, 3, (64,)))
loader = DataLoader(data, batch_size=8)
model = nn.Sequential(nn.Linear(8, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Linear(16, 3), nn.Softmax(dim=1))
criterion = nn.CrossEntropyLoss()
optimizer = optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=30, gamma=0.1)


def train(epochs):
	for epoch in range(epochs):
		running = 0.0
		idx = list(range(len(data)))
		random.shuffle(idx)
		for x, y in loader:
			out = model(x)  # forward
			loss = criterion(out, y)
			loss.backward()
			optimizer.step()
			scheduler.step()
			running += loss
		print(epoch, running)


def validate():
	correct = 0
	for x, y in loader:
		pred = model.forward(x)
		correct += (pred.argmax(1) == y).sum().item()
	return correct


if __name__ == "__main__":
	train(3)
	x = torch.randn(2, 8)
	x.to("cpu")
	print(validate())
