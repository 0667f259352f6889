"""A notebook exported as a script: torch is seeded for sampling, and a numpy sampling helper whose only call was
commented out is left in a cell. Its draws never run, so the unseeded numpy global RNG changes nothing; the live
`random.shuffle` further down does run and is reported."""

import random

import numpy as np
import torch
import torch.nn as nn

torch.manual_seed(1337)

vocab = list("abcdefghijklmnopqrstuvwxyz.")
stoi = {ch: i for i, ch in enumerate(vocab)}


def sample_noise_names(n: int) -> list[str]:
    """Random strings for eyeballing the model's scores (unused since the notebook moved on)."""
    lengths = np.random.randint(3, 9, size=n)
    return ["".join(np.random.choice(vocab[:-1], size=k)) for k in lengths]


# print(sample_noise_names(5))

model = nn.Sequential(nn.Embedding(len(vocab), 16), nn.Flatten(), nn.Linear(16 * 3, len(vocab)))
names = ["emma", "olivia", "ava", "isabella", "sophia"]
random.shuffle(names)  # expect: SAN402
context = torch.tensor([[stoi["."]] * 3])
with torch.no_grad():
    probs = torch.softmax(model(context), dim=-1)
print(vocab[int(torch.multinomial(probs, 1))], names[0])
