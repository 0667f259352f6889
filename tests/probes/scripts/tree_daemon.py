"""Double-forks a daemon (a stand-in for a metrics uploader) that leaves the session with setsid() and replaces
its environment, then waits for a dataset download that never finishes, so it never reaches backward().

Usage: tree_daemon.py TOKEN PID_FILE (every process of the script appends its pid to PID_FILE)."""

import os
import sys
import time

import torch

token, pid_file = sys.argv[1], sys.argv[2]


def record(pid: int) -> None:
    with open(pid_file, "a", encoding="utf-8") as fh:
        fh.write(f"{pid}\n")


def start_uploader() -> None:
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            record(os.getpid())
            os.execve("/bin/sleep", ["sleep", "600"], {"PATH": "/usr/bin:/bin"})  # a clean environment
        os._exit(0)
    os.wait()


record(os.getpid())
start_uploader()
model = torch.nn.Linear(8, 2)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
while not os.path.exists(os.path.join(os.path.dirname(pid_file), "download-complete")):
    time.sleep(0.5)
x, y = torch.randn(16, 8), torch.randint(0, 2, (16,))
for step in range(10):
    optimizer.zero_grad()
    torch.nn.functional.cross_entropy(model(x), y).backward()
    optimizer.step()
