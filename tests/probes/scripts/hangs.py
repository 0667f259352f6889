"""Hangs before its first backward(), with a helper process of its own: the whole tree must be killed."""

import subprocess
import sys
import time

import torch

token = sys.argv[1] if len(sys.argv) > 1 else "none"
helper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)", token])
model = torch.nn.Linear(4, 2)
print("waiting for data that never comes", flush=True)
while True:
    time.sleep(0.5)
