"""The overhead benchmark's training script: a small CNN on 3x32x32 images (CIFAR-sized, synthetic) with a
DataLoader and a validation pass per epoch, timing its own training steps in wall and thread CPU time, and the
process's CPU time up to the end of training (prints one JSON line at the end).

Usage: bench_cnn_train.py STEPS [WIDTH]"""

import json
import sys
import time

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


def build(width: int = 32):
    """The model, its loaders, loss and optimizer."""
    torch.manual_seed(0)
    y = torch.arange(2048) % 10
    x = torch.randn(2048, 3, 32, 32) * 0.5 + y.view(-1, 1, 1, 1) * 0.05
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    val_loader = DataLoader(TensorDataset(x[:256], y[:256]), batch_size=128)
    model = nn.Sequential(
        nn.Conv2d(3, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(2 * width, 10))
    return model, loader, val_loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.05,
                                                                               momentum=0.9)


def train(parts, steps: int, cpu: list[float] | None = None) -> list[float]:
    """``steps`` training steps (epochs with a validation pass between them); each step's seconds, batch
    fetch included. ``cpu`` gets each step's CPU seconds of this thread (time the machine's other load took from
    it left out)."""
    model, loader, val_loader, criterion, optimizer = parts
    times: list[float] = []
    cpu = [] if cpu is None else cpu
    while len(times) < steps:
        model.train()
        t, c = time.perf_counter(), time.thread_time()
        for xb, yb in loader:
            optimizer.zero_grad()
            loss = criterion(model(xb), yb)
            loss.backward()
            optimizer.step()
            now, cnow = time.perf_counter(), time.thread_time()
            times.append(now - t)
            cpu.append(cnow - c)
            t, c = now, cnow
            if len(times) >= steps:
                break
        model.eval()
        with torch.no_grad():
            sum(criterion(model(xb), yb).item() for xb, yb in val_loader)
    return times


if __name__ == "__main__":
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    cpu_times: list[float] = []
    times = train(build(int(sys.argv[2]) if len(sys.argv) > 2 else 32), steps, cpu_times)
    summary = {"steps": len(times), "process_cpu": time.process_time()}  # the whole process, start-up included
    for prefix, values in (("", times), ("cpu_", cpu_times)):
        later = sorted(values[1:])  # the first step (warm-up; under the watch, the hooks' set-up) left out
        summary.update({f"{prefix}median_step": later[len(later) // 2], f"{prefix}p10_step": later[len(later) // 10],
                        f"{prefix}mean_step": sum(later) / len(later)})
    print(json.dumps(summary))
