"""MNIST from scratch, beginner style: the data and loss mistakes a reviewer keeps finding."""

import torch
import torch.nn as nn
import torch.nn.functional as F
from torchvision import datasets, transforms

torch.manual_seed(1)
use_cuda = torch.cuda.is_available()
device = torch.device("cuda" if use_cuda else "cpu")

transform = transforms.Compose([
    transforms.RandomRotation(10),
    transforms.RandomAffine(0, translate=(0.1, 0.1)),
    transforms.ToTensor(),
    transforms.Normalize((0.1307,), (0.3081,)),
])
train_loader = torch.utils.data.DataLoader(  # expect: SAN802
    datasets.MNIST("../data", train=True, download=True, transform=transform),
    batch_size=64,
)
test_set = datasets.MNIST("../data", train=False, transform=transform)  # expect: SAN801
test_loader = torch.utils.data.DataLoader(test_set, batch_size=1000)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, 5, 1)
        self.conv2 = nn.Conv2d(20, 50, 5, 1)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(x, 2, 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(x, 2, 2)
        x = x.view(-1, 4 * 4 * 50)
        x = F.relu(self.fc1(x))
        x = self.fc2(x)
        return F.softmax(x, dim=1)


model = Net().to(device)
for p in model.parameters():
    nn.init.constant_(p, 0.0)  # expect: SAN702
optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.5)

images, labels = next(iter(train_loader))
images.to(device)  # expect: SAN901
print("first batch", images.shape, labels[:8])

for epoch in range(1, 11):
    model.train()
    for batch_idx, (data, target) in enumerate(train_loader):
        data, target = data.to(device), target.to(device)
        optimizer.zero_grad()
        output = model(data)
        loss = F.nll_loss(output, target)  # expect: SAN602
        loss.backward()
        optimizer.step()

    model.eval()
    test_loss = 0
    correct = 0
    with torch.no_grad():
        for data, target in test_loader:
            data, target = data.to(device), target.to(device)
            output = model(data)
            test_loss += F.nll_loss(output, target, reduction="sum").item()  # expect: SAN602
            pred = output.argmax(dim=1, keepdim=True)
            correct += pred.eq(target.view_as(pred)).sum().item()
    print(epoch, test_loss / len(test_loader.dataset), correct / len(test_loader.dataset))
