"""Schedulers, for the SAN5xx rules: the schedulers a module builds and where they are stepped."""

from __future__ import annotations

from dataclasses import dataclass

import libcst as cst

from ..flow import SCHED_STEP, Effect, Flow, flow_of
from ..model import ProgramModel
from ..torch_api import SCHEDULER
from ..values import values


@dataclass
class SchedulerInfo:
    name: str  # the dotted name it is bound to
    call: cst.Call  # the constructor call
    cls: str  # "StepLR", "CosineAnnealingLR", ...


def schedulers(program: ProgramModel) -> list[SchedulerInfo]:
    """Schedulers bound once to a name (a rebound name mixes the steps of several schedulers): built right
    there, or handed back by a helper of this module (``model, optimizer, scheduler = build(cfg)``)."""
    out = []
    for name, bindings in program.bindings.items():
        if len(bindings) != 1:
            continue
        b = bindings[0]
        if b.kind == SCHEDULER and isinstance(b.value, cst.Call):
            qual = program.call_name(b.value) or ""
            out.append(SchedulerInfo(name, b.value, qual.rsplit(".", 1)[-1]))
        elif b.kind is None and (b.value is None or isinstance(b.value, cst.Call)):
            value = values(program).bound(b)
            if value is not None and value.kind == SCHEDULER and value.origin is not None and value.qualname \
                    and program.top_statement(value.origin) is not None:  # built in this module
                out.append(SchedulerInfo(name, value.origin, value.qualname.rsplit(".", 1)[-1]))
    return out


def scheduler_steps(flow: Flow, name: str) -> list[Effect]:
    """Every `name.step()` effect in every scope of the module (helpers inlined, targets mapped)."""
    return flow.program.cached(_scheduler_steps).get(name, [])


def _scheduler_steps(program: ProgramModel) -> dict[str | None, list[Effect]]:
    by_target: dict[str | None, list[Effect]] = {}
    for scope in flow_of(program).all_scopes():
        for e in scope.effects:
            if e.kind == SCHED_STEP:
                by_target.setdefault(e.target, []).append(e)
    return by_target
