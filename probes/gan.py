"""The two steps of a GAN: which model a step trains, and whether it is the generator's or the discriminator's.

A generator step trains one model and sends its output through another that a different optimizer trains; a
discriminator step's batch holds the detached output of a model that a different optimizer trains. A frozen
teacher or a target network (trained by no optimizer) makes neither.
"""

from __future__ import annotations

from typing import Any

import torch

from .capture import Captured


def holds(optimizer: Any, module: torch.nn.Module) -> bool:
    """True when ``optimizer`` trains some parameter of ``module``."""
    if optimizer is None:
        return False
    held = {id(p) for g in optimizer.param_groups for p in g["params"]}
    return any(id(p) in held for p in module.parameters())


def gan_role(models: list[torch.nn.Module], others: list[torch.nn.Module], detached: list[torch.nn.Module],
             cap: Captured) -> str | None:
    """Which step of a GAN this is: "generator" when the trained model's output goes through another model that a
    different optimizer trains, "discriminator" when the batch holds the detached output of a model that a different
    optimizer trains; None otherwise (a frozen teacher or target network is no GAN)."""
    stepped = cap.stepped_optimizer
    if stepped is None:
        return None

    def trained_elsewhere(m: torch.nn.Module) -> bool:
        return not holds(stepped, m) and any(o is not stepped and holds(o, m) for o in cap.optimizers)

    if others and all(trained_elsewhere(m) for m in others):
        return "generator"
    mine = {id(x) for m in models for x in m.modules()}
    detached = [m for m in detached if id(m) not in mine]
    if detached and all(trained_elsewhere(m) for m in detached):
        return "discriminator"
    return None
