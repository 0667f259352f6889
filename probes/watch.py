"""The watch child: ``python -m torchsanity.probes.watch SCRIPT [ARGS...]``.

Runs the user's unmodified script with ``runpy`` under low-overhead hooks (``watch_hooks.py``: optimizer step
hooks, ``backward`` capture, DataLoader timing, evaluation phases; ``watch_layers.py``: module forward hooks on
sampled steps only; ``watch_ranks.py``: DDP checksums) and appends what it records, as JSON lines, to a metrics
file. Values stay tensors until a flush (at most every half second; on a GPU only on sampled steps, or after
4096 unflushed steps), so a GPU run synchronises only on sampled steps.

Settings: the environment variable ``TORCHSANITY_WATCH_CONFIG`` holds a JSON object:
  ``metrics`` (required) the JSON-lines file; ``every`` per-layer statistics every K optimizer steps (default
  ``probes.WATCH_EVERY``); ``steps`` stop after N optimizer steps; ``epochs`` stop after N passes over the
  training loader (the one whose batches feed the first optimizer step: the run stops when pass N+1 asks for its
  first batch, so an evaluation after pass N still runs); ``device`` "auto" | "cpu" | "cuda" ("cuda" with no CUDA
  device ends the run at once with an ``end`` record whose reason is "error" and error type "NoCuda"; for "cpu"
  the parent also sets ``CUDA_VISIBLE_DEVICES=""``).
Under ``torchrun`` (``python -m torch.distributed.run --standalone --nproc-per-node=N -m
torchsanity.probes.watch SCRIPT ...``) every rank is watched: rank 0 (``RANK`` unset or 0) writes ``metrics``;
rank r > 0 writes the same records to ``metrics + ".rank<r>"``, and rank 0 copies the others' ``checksum``
records into ``metrics`` as they appear, so the parent reads one file.

Records (one JSON object per line, told apart by ``kind``; fields are only ever added, never renamed; numbers
that are not finite are the strings "nan", "inf", "-inf"; null = not measured):
- ``start``: script, argv, pid, torch, every, time (epoch seconds), rank, world_size, device ("cpu"/"cuda").
- ``layers`` (at the first optimizer step): names (one per parameter of the watched optimizer, "0.weight"),
  ndim, numel, optimizer (class name).
- ``step`` (every optimizer step of the first optimizer that steps): step (1-based), loss (the last scalar passed
  to ``backward()`` before it), grad_norm (global L2 norm of the gradients, null on steps where a stride thins it
  out), lr (list, one per parameter group), seconds (wall time since the previous step, null at step 1),
  backwards (count of ``backward()`` calls), data_seconds (time spent waiting in the training DataLoader's
  ``next()`` since the previous step; null when the batches do not come from a DataLoader), compute_seconds
  (seconds - data_seconds - the time spent in evaluation phases since the previous step, or null), samples (batch
  size: the first dimension of the first tensor of the last batch from the training loader — or, without a
  DataLoader, of the model's first input —, or null), samples_per_second (samples / (seconds - evaluation time),
  or null), epoch (passes over the training loader completed so far — a pass counts when exhausted, or when a new
  one starts after it yielded at least half its batches; null without a DataLoader).
- ``sample`` (at step 1 and every ``every`` steps): step, grad_norm / weight_norm / update_ratio (lists aligned
  with ``layers.names``; update_ratio = ‖Δw‖/‖w‖ of that step), cuda_memory (null on CPU, else {"allocated",
  "reserved", "peak"} in bytes).
- ``activations`` (the training forward pass of step 2 — the baseline — and of every sampled step after it): step,
  modules: list of {"name" (module path in the model, "3"), "type" ("ReLU"), "mean", "std", "zero" (fraction of
  exact zeros; these and the histogram read an evenly strided sample of at most 16384 of the output's values),
  "saturated" (tanh: |y| > 0.99, sigmoid: y < 0.01 or y > 0.99, else null), "dead" (ReLU-family only: fraction
  of units (channel dim 1 for ≥ 3-d outputs, last dim for 2-d) never positive over the batch,
  else null), "hist": {"lo", "hi", "counts": [20 ints]}}.
- ``filters`` (image models: the first conv layer with 1 or 3 input channels): step (0 = before the first update),
  layer (parameter name), shape (of the full weight), values (nested list [filter][channel][h][w] of at most 32
  filters, 4 significant digits). Written at step 0, every 20 x ``every`` steps, and at the end.
- ``eval`` (an evaluation phase: the watched model switched to ``eval()``, losses computed under no-grad; it ends
  when the model goes back to ``train()`` or at the next optimizer step): step (optimizer steps done before it),
  loss (sample-weighted mean of the loss function the training step used, or of the only one used in the phase),
  fn (that function's name, "cross_entropy"), losses ({fn: mean} for every loss function called), batches,
  samples, seconds.
- ``nonfinite`` (once, the first time the loss or the gradients are NaN/inf): step, where ("loss" | "grad"),
  module (the first module, in call order, whose output was non-finite while its inputs and parameters were
  finite, found by replaying that forward pass without side effects; or for "grad" the parameter nearest the
  output whose gradient is non-finite; null when none is found), module_type, detail (a sentence). On a CPU it is
  found at the step itself; on a GPU at the next flush, from the last forward pass then.
- ``checksum`` (DDP: world size > 1; at step 1 and every ``every`` steps, every rank): step, rank, world_size,
  values (per parameter: the sum of its weights, float64), norms (per parameter L2 norms).
- ``scheduler``: type, watched (true when it drives the watched optimizer).
- ``scheduler_stepped`` (once per scheduler, after the script first calls its ``step()``; the constructor's own
  call does not count): type, watched.
- ``end``: reason ("finished" | "exit" | "steps" | "epochs" | "SIGTERM" | "SIGINT" | "SIGHUP" | "error"),
  steps, epochs, other_optimizers, exit_code (for "exit"), error ({type, message, traceback, oom} for "error").
"""

from __future__ import annotations

import json
import os
import runpy
import signal
import sys
import time
from typing import Any

from . import WATCH_CONFIG_ENV as CONFIG_ENV
from . import WATCH_EVERY as DEFAULT_EVERY
from .script_run import is_oom, tie_to_guard, user_traceback
from .watch_ranks import RankFollower, metrics_path, rank_and_world

_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def run(cfg: dict, argv: list[str]) -> int:
    """Run the script under the recorder; the metrics file gets a "start" and an "end" record around it."""
    device = cfg.get("device") or "auto"
    if device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # before torch first looks for a GPU
    import torch

    from .watch_hooks import StopWatch, WatchRecorder

    script = os.path.abspath(argv[0])
    rank, world = rank_and_world()
    out = open(metrics_path(cfg["metrics"], rank), "a", encoding="utf-8")
    follower = RankFollower(cfg["metrics"], world) if rank == 0 and world > 1 else None
    recorder = WatchRecorder(out, every=int(cfg.get("every") or DEFAULT_EVERY), max_steps=cfg.get("steps"),
                             max_epochs=cfg.get("epochs"), rank=rank, world=world, follower=follower)
    has_cuda = torch.cuda.is_available()
    recorder.write({"kind": "start", "script": script, "argv": argv[1:], "pid": os.getpid(),
                    "torch": torch.__version__, "every": recorder.every, "time": time.time(), "rank": rank,
                    "world_size": world, "device": "cuda" if has_cuda else "cpu"})
    out.flush()
    if device == "cuda" and not has_cuda:
        recorder.write({"kind": "end", "reason": "error", "steps": 0, "epochs": 0, "other_optimizers": 0,
                        "error": {"type": "NoCuda", "message": f"--device cuda, but torch {torch.__version__} in "
                                  f"{sys.executable} sees no CUDA device", "traceback": "", "oom": False}})
        out.close()
        return 2
    me = os.getpid()

    def on_term(signum, _frame):
        if os.getpid() != me:  # a forked worker (DataLoader): end as the signal asks
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise StopWatch(signal.Signals(signum).name)

    for signum in _SIGNALS:
        signal.signal(signum, on_term)
    sys.argv = [script] + argv[1:]
    sys.path[0] = os.path.dirname(script)
    end: dict[str, Any] = {"kind": "end", "reason": "finished"}
    code = 0
    recorder.install()
    try:
        runpy.run_path(script, run_name="__main__")
    except StopWatch as exc:
        end["reason"] = exc.reason
    except SystemExit as exc:
        end["reason"] = "exit"
        end["exit_code"] = exc.code if isinstance(exc.code, int) or exc.code is None else str(exc.code)
    except KeyboardInterrupt:
        end["reason"] = "SIGINT"
    except BaseException as exc:  # the script's own exception
        end["reason"] = "error"
        end["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": user_traceback(exc),
                        "oom": is_oom(exc)}
        code = 2
    finally:
        for signum in _SIGNALS:
            signal.signal(signum, signal.SIG_IGN)  # the record is being finished
        recorder.uninstall()
    recorder.finish()
    end["steps"] = recorder.step
    end["epochs"] = recorder.completed.get(recorder.train_loader, 0) if recorder.train_loader is not None else None
    end["other_optimizers"] = len(recorder.others)
    recorder.write(end)
    out.flush()
    out.close()
    return code


def main(argv: list[str] | None = None) -> int:
    tie_to_guard()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    cfg = json.loads(os.environ.get(CONFIG_ENV, "{}"))
    if not argv or not cfg.get("metrics"):
        print(f"usage: {CONFIG_ENV}='{{\"metrics\": FILE}}' python -m torchsanity.probes.watch SCRIPT [ARGS...]",
              file=sys.stderr)
        return 2
    return run(cfg, argv)


if __name__ == "__main__":
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)  # threads or worker processes the script started must not keep us alive
