"""DDP training with gradient accumulation through no_sync(): the loss is scaled by the number of
accumulation steps, gradients are synchronised and cleared every k micro-batches."""

import contextlib
import os

import torch
import torch.distributed as dist
import torch.nn as nn
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data import DataLoader, DistributedSampler

from mylib.data import build_dataset
from mylib.models import build_model


def setup():
    dist.init_process_group("nccl")
    local_rank = int(os.environ["LOCAL_RANK"])
    torch.cuda.set_device(local_rank)
    return local_rank


def main():
    local_rank = setup()
    torch.manual_seed(1234 + dist.get_rank())
    dataset = build_dataset("train")
    sampler = DistributedSampler(dataset, shuffle=True)
    loader = DataLoader(dataset, batch_size=32, sampler=sampler, num_workers=4, drop_last=True)
    model = DDP(build_model().cuda(local_rank), device_ids=[local_rank])
    criterion = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    accumulation_steps = 8

    for epoch in range(100):
        sampler.set_epoch(epoch)
        model.train()
        optimizer.zero_grad()
        for i, (inputs, targets) in enumerate(loader):
            inputs, targets = inputs.cuda(local_rank), targets.cuda(local_rank)
            sync = (i + 1) % accumulation_steps == 0
            context = contextlib.nullcontext() if sync else model.no_sync()
            with context:
                loss = criterion(model(inputs), targets) / accumulation_steps
                loss.backward()
            if sync:
                optimizer.step()
                optimizer.zero_grad()

        # the explicit form: no_sync for the first k-1 micro-batches
        for i, (inputs, targets) in enumerate(loader):
            inputs, targets = inputs.cuda(local_rank), targets.cuda(local_rank)
            if (i + 1) % accumulation_steps != 0:
                with model.no_sync():
                    loss = criterion(model(inputs), targets)
                    (loss / accumulation_steps).backward()
            else:
                loss = criterion(model(inputs), targets)
                (loss / accumulation_steps).backward()
                optimizer.step()
                optimizer.zero_grad()

    dist.destroy_process_group()


if __name__ == "__main__":
    main()
