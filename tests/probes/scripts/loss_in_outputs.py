"""A model that computes its own loss, Hugging Face style, and returns it inside a plain dataclass, a NamedTuple or
a dict (``--outputs dataclass|namedtuple|dict``); the loop reads ``outputs.loss`` / ``outputs["loss"]``."""

import argparse
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

parser = argparse.ArgumentParser()
parser.add_argument("--outputs", choices=["dataclass", "namedtuple", "dict"], default="dataclass")
args = parser.parse_args()


@dataclass
class ClassifierOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor


class ClassifierTuple(NamedTuple):
    loss: torch.Tensor | None
    logits: torch.Tensor


class Classifier(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.body = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def forward(self, input_ids, labels=None):
        logits = self.body(input_ids)
        loss = F.cross_entropy(logits, labels) if labels is not None else None
        if self.kind == "dataclass":
            return ClassifierOutput(loss=loss, logits=logits)
        if self.kind == "namedtuple":
            return ClassifierTuple(loss, logits)
        return {"loss": loss, "logits": logits}


torch.manual_seed(0)
x = torch.randn(64, 16)
y = x[:, :4].argmax(1)
model = Classifier(args.outputs)
optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
for start in range(0, 64, 16):
    outputs = model(x[start:start + 16], labels=y[start:start + 16])
    loss = outputs["loss"] if isinstance(outputs, dict) else outputs.loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
