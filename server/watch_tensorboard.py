"""``torchsanity watch --tensorboard DIR``: the metrics records written as TensorBoard scalars, as they arrive, so
people keep their viewer. Needs the ``tensorboard`` package (its event-file writer and protocol buffers; no
TensorFlow, no torch in this process)."""

from __future__ import annotations

import math
import os
import time

MISSING = ("torchsanity watch: --tensorboard needs the tensorboard package in the interpreter that runs torchsanity "
           "(pip install tensorboard); the run was not started")
_SKIP_KINDS = {"start", "end", "layers", "scheduler"}


def available() -> bool:
    """Whether the tensorboard package can be imported."""
    try:
        _imports()
    except ImportError:
        return False
    return True


def _imports():
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    return Event, Summary, EventFileWriter


def _finite(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


class TensorBoardWriter:
    """Writes the records of one run into an event file under ``logdir``: ``loss``, ``grad_norm``, ``lr/group_N``,
    ``step_seconds`` per step; per layer ``<field>/<layer>`` for each per-layer list of a sample record; and
    ``<kind>/<field>`` for the numbers of any other record kind with a step (a validation phase, say)."""

    def __init__(self, logdir: str):
        self._event, self._summary, writer = _imports()
        self._writer = writer(os.path.abspath(logdir))
        self.layers: list[str] = []
        self.path = self._writer.get_logdir()

    def _add(self, step: int, values: dict[str, float | None]) -> None:
        summary = self._summary(value=[self._summary.Value(tag=tag, simple_value=v)
                                       for tag, v in values.items() if v is not None])
        if summary.value:
            self._writer.add_event(self._event(wall_time=time.time(), step=step, summary=summary))

    def records(self, records: list[dict]) -> None:
        for record in records:
            kind, step = record.get("kind"), record.get("step")
            if kind == "layers":
                self.layers = [str(n) for n in record.get("names") or []]
            if kind in _SKIP_KINDS or not isinstance(step, int):
                continue
            if kind == "step":
                values = {"loss": _finite(record.get("loss")), "grad_norm": _finite(record.get("grad_norm")),
                          "step_seconds": _finite(record.get("seconds"))}
                for i, lr in enumerate(record.get("lr") or []):
                    values[f"lr/group_{i}"] = _finite(lr)
                for key in ("samples_per_second", "data_seconds"):
                    values[key] = _finite(record.get(key))
            else:
                values = {}
                for key, value in record.items():
                    if key in ("kind", "step"):
                        continue
                    if isinstance(value, list) and len(value) == len(self.layers):
                        values.update({f"{key}/{name}": _finite(v) for name, v in zip(self.layers, value)})
                    elif _finite(value) is not None:
                        values[f"{kind}/{key}"] = _finite(value)
            self._add(step, values)

    def close(self) -> None:
        self._writer.flush()
        self._writer.close()
