"""Self-supervised pre-training launched with ``torch.multiprocessing.spawn``: ``main()`` parses the arguments
and hands ``main_worker`` to one process per GPU; the worker builds the model, wraps it in DDP and trains.
Nothing seeds torch, so every run differs. The per-epoch loss is also accumulated as a tensor divided by the
loader's length: each batch's graph stays alive until the epoch ends.

Pattern seen in public self-supervised and vision-transformer repositories (recorded in the real-code
manifest); this script is written for the corpus.
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from torch.utils.data.distributed import DistributedSampler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=0.2)
    args = parser.parse_args()
    args.ngpus_per_node = torch.cuda.device_count()
    torch.multiprocessing.spawn(main_worker, (args,), args.ngpus_per_node)


def main_worker(gpu, args):
    torch.distributed.init_process_group("nccl", init_method="tcp://localhost:58472",
                                         world_size=args.ngpus_per_node, rank=gpu)
    torch.cuda.set_device(gpu)
    model = nn.Sequential(nn.Linear(128, 512), nn.ReLU(), nn.Linear(512, 128)).cuda(gpu)
    model = nn.parallel.DistributedDataParallel(model, device_ids=[gpu])
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    dataset = TensorDataset(torch.randn(4096, 128))
    sampler = DistributedSampler(dataset)
    loader = DataLoader(dataset, batch_size=args.batch_size // args.ngpus_per_node, sampler=sampler)
    for epoch in range(args.epochs):
        sampler.set_epoch(epoch)
        epoch_loss = 0
        for (x,) in loader:
            x = x.cuda(gpu, non_blocking=True)
            z1, z2 = model(x + 0.1 * torch.randn_like(x)), model(x + 0.1 * torch.randn_like(x))
            loss = -F.cosine_similarity(z1, z2.detach()).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            epoch_loss += loss / len(loader)  # expect: SAN106
        if gpu == 0:
            print(f"epoch {epoch}: {epoch_loss:.4f}")


if __name__ == "__main__":
    main()  # expect: SAN401
