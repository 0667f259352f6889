"""A beginner's MNIST script with the classic training-loop bugs: gradients never cleared, the loss
kept with its graph, evaluation without eval() or no_grad, training never switched back, an epoch
scheduler stepped per batch, and no seed."""

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
from torch.utils.data import DataLoader
from torchvision import datasets, transforms


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(self.dropout1(x), 1)
        x = self.dropout2(F.relu(self.fc1(x)))
        return self.fc2(x)


def evaluate(model, loader):  # expect: SAN201, SAN202
    correct = 0
    for data, target in loader:
        output = model(data)
        correct += output.argmax(dim=1).eq(target).sum().item()
    return correct / len(loader.dataset)


transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_loader = DataLoader(datasets.MNIST("../data", train=True, download=True, transform=transform), batch_size=64, shuffle=True)
test_loader = DataLoader(datasets.MNIST("../data", train=False, transform=transform), batch_size=1000)

model = Net()
optimizer = optim.SGD(model.parameters(), lr=0.01, momentum=0.5)
scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)

for epoch in range(1, 15):
    total_loss = 0
    for batch_idx, (data, target) in enumerate(train_loader):  # expect: SAN101
        output = model(data)
        loss = F.cross_entropy(output, target)
        loss.backward()  # expect: SAN401
        optimizer.step()
        scheduler.step()  # expect: SAN502
        total_loss += loss  # expect: SAN106
    print(f"epoch {epoch}: train loss {total_loss / len(train_loader)}")
    print(f"test accuracy {evaluate(model, test_loader)}")

torch.save(model.state_dict(), "mnist_cnn.pt")
