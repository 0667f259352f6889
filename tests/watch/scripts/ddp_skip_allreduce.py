"""Two ranks that drift apart (run under torchrun, gloo): the gradients are averaged by hand — flattened,
all-reduced, divided — but copying the average back into .grad sits under ``if rank == 0`` (it was meant for
the logging line below it), so rank 1 steps with its own, un-averaged gradients."""

import argparse

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

parser = argparse.ArgumentParser()
parser.add_argument("--fixed", action="store_true", help="copy the average back on every rank")
parser.add_argument("--steps", type=int, default=120)
args = parser.parse_args()
dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)  # the same initial weights on every rank
model = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 2))
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
data = torch.Generator().manual_seed(100 + rank)  # each rank its own shard


def average_gradients():
    flat = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    dist.all_reduce(flat)
    flat /= world
    if rank == 0 or args.fixed:
        offset = 0
        for p in model.parameters():
            p.grad.copy_(flat[offset:offset + p.numel()].view_as(p))
            offset += p.numel()
        if rank == 0 and step % 40 == 0:
            print(f"step {step}: loss {loss.item():.4f}", flush=True)


for step in range(args.steps):
    x = torch.randn(32, 16, generator=data)
    y = (x[:, :2].sum(1) > 0).long()
    loss = F.cross_entropy(model(x), y)
    optimizer.zero_grad()
    loss.backward()
    average_gradients()
    optimizer.step()
dist.destroy_process_group()
