"""The benchmark's training script: the healthy classifier, timing its own steps (prints one JSON line)."""

import json
import sys
import time

T0 = time.perf_counter()

import torch  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

steps = int(sys.argv[1]) if len(sys.argv) > 1 else 100
hidden = int(sys.argv[2]) if len(sys.argv) > 2 else 64
torch.manual_seed(0)
centres = torch.randn(10, 20) * 2.0
y = torch.arange(4096) % 10
x = centres[y] + torch.randn(4096, 20)
x = (x - x.mean(0)) / x.std(0)
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
model = nn.Sequential(nn.Linear(20, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))
criterion = nn.CrossEntropyLoss()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
built = time.perf_counter()

times = []
done = 0
t = time.perf_counter()
while done < steps:
    for xb, yb in loader:  # the time of a step includes fetching its batch
        optimizer.zero_grad()
        loss = criterion(model(xb), yb)
        loss.backward()
        optimizer.step()
        now = time.perf_counter()
        times.append(now - t)
        t = now
        done += 1
        if done >= steps:
            break
end = time.perf_counter()
later = sorted(times[1:])
print(json.dumps({"import_build": built - T0, "first_step": times[0], "median_step": later[len(later) // 2],
                  "p10_step": later[len(later) // 10],
                  "mean_step": sum(times[1:]) / max(1, len(times) - 1), "steps_total": end - built,
                  "total": end - T0}))
