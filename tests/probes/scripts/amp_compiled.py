"""A torch.compile'd model trained under autocast (bfloat16 on CPU, float16 + GradScaler on CUDA)."""

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

device = "cuda" if torch.cuda.is_available() else "cpu"
torch.manual_seed(0)
centres = torch.randn(10, 20) * 2.0
y = torch.arange(512) % 10
x = centres[y] + torch.randn(512, 20)
x = (x - x.mean(0)) / x.std(0)
loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)

net = nn.Sequential(nn.Linear(20, 64), nn.ReLU(), nn.Linear(64, 10)).to(device)
model = torch.compile(net, backend="eager" if device == "cpu" else "inductor")
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
scaler = torch.amp.GradScaler(device, enabled=device == "cuda")
dtype = torch.float16 if device == "cuda" else torch.bfloat16

for xb, yb in loader:
    xb, yb = xb.to(device), yb.to(device)
    optimizer.zero_grad()
    with torch.autocast(device_type=device, dtype=dtype):
        loss = nn.functional.cross_entropy(model(xb), yb)
    scaler.scale(loss).backward()
    scaler.step(optimizer)
    scaler.update()
