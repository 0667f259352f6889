"""Starts a helper process (a stand-in for a GPU monitor: `sleep`) with subprocess.Popen, then waits for a
dataset download that never finishes, so it never reaches backward().

Usage: tree_popen.py TOKEN PID_FILE (every process of the script appends its pid to PID_FILE)."""

import os
import subprocess
import sys
import time

import torch

token, pid_file = sys.argv[1], sys.argv[2]
monitor = subprocess.Popen(["sleep", "600"])
with open(pid_file, "a", encoding="utf-8") as fh:
    fh.write(f"{os.getpid()}\n{monitor.pid}\n")

model = torch.nn.Linear(8, 2)
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
while not os.path.exists(os.path.join(os.path.dirname(pid_file), "download-complete")):
    time.sleep(0.5)
x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
for step in range(10):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
