"""The child process: ``python -m torchsanity.probes.child SCRIPT [ARGS...]``.

Reads its configuration from ``TORCHSANITY_PROBE_CONFIG`` (JSON), installs the hooks before the script imports
anything, runs the script unmodified with ``runpy``, and at the first ``backward()`` runs the checks on copies,
then stops the script with ``StopProbe`` (a ``BaseException``). Progress goes as JSON lines to
``events-<tag>-<rank>.jsonl`` and the result to ``report-<tag>-<rank>.json`` in the configured folder.
"""

from __future__ import annotations

import json
import os
import runpy
import sys
import time
import traceback
from typing import Any

import torch

from . import CHECK_IDS
from .capture import Captured, Recorder, StopProbe
from .checks import CHECKS
from .context import CheckResult, ProbeContext, loss_info, scalar
from .replay import CannotDrive, Step, TapeStep, iter_tensors
from .workbench import Workbench, unwrap

TRAINING_CHECKS = {"overfit-batch", "input-independence", "lr-range"}
_HERE = os.path.dirname(os.path.abspath(__file__))


class Emitter:
    """Appends JSON lines to a file the parent tails."""

    def __init__(self, path: str):
        self.path = path
        self._fh = open(path, "a", encoding="utf-8")

    def emit(self, event: dict) -> None:
        try:
            self._fh.write(json.dumps(event, default=str) + "\n")
            self._fh.flush()
        except Exception:
            pass


def is_oom(exc: BaseException) -> bool:
    text = str(exc).lower()
    return isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError" or \
        "out of memory" in text or "can't allocate memory" in text or "cannot allocate memory" in text


def user_traceback(exc: BaseException) -> str:
    """The script's traceback without the harness's own frames."""
    here = os.path.realpath(_HERE)
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if not os.path.realpath(f.filename).startswith(here) and "runpy" not in f.filename]
    lines = ["Traceback (most recent call last):\n"] + traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    return "".join(lines)


class Harness:
    """Drives one run of the user's script (or entry point) and fills the report."""

    def __init__(self, cfg: dict, emitter: Emitter, report: dict):
        self.cfg = cfg
        self.em = emitter
        self.report = report
        self.script = cfg["script"]
        self.mode = cfg.get("mode", "probe")
        self.recorder: Recorder | None = None
        self.done = False
        self.report_path: str | None = None

    def save(self) -> None:
        """Write the report as it stands (atomically), so a killed run keeps what was measured."""
        if not self.report_path:
            return
        with open(self.report_path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(self.report, fh, default=str)
        os.replace(self.report_path + ".tmp", self.report_path)

    # -- running the script -------------------------------------------------------------------------------
    def run_script(self, argv: list[str]) -> int:
        self.recorder = Recorder(self.on_backward)
        self.recorder.install()
        script = os.path.abspath(self.script)
        sys.argv = [script] + list(argv)
        sys.path[0] = os.path.dirname(script)
        try:
            runpy.run_path(script, run_name="__main__")
        except StopProbe:
            pass
        except SystemExit as exc:
            if not self.done:
                return self.harness_error("ScriptExited", f"the script exited (code {exc.code}) before its first "
                                          "backward(): nothing to probe. If training sits behind a command-line "
                                          "flag, pass it after --; otherwise use --entry MODULE:FUNCTION")
        except KeyboardInterrupt:
            self.report["cancelled"] = True
            return 2
        except BaseException as exc:  # the script's own exception
            self.report["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": user_traceback(exc),
                                    "oom": is_oom(exc), "source": "script"}
            if is_oom(exc):
                self.report["oom"] = True
            return 2
        finally:
            self.recorder.uninstall()
        if not self.done:
            return self.harness_error("NoBackward", "the script finished without calling backward(): nothing to "
                                      "probe. If training sits behind a command-line flag, pass it after --; "
                                      "otherwise use --entry MODULE:FUNCTION returning (model, batch, loss_fn, "
                                      "optimizer)")
        return self.exit_code()

    def harness_error(self, kind: str, message: str, tb: str | None = None) -> int:
        self.report["error"] = {"type": kind, "message": message, "source": "harness"}
        if tb:
            self.report["error"]["traceback"] = tb
        return 2

    def exit_code(self) -> int:
        if "error" in self.report:
            return 2
        statuses = {c["status"] for c in self.report.get("checks", [])}
        return 1 if "fail" in statuses else (2 if "error" in statuses else 0)

    def on_backward(self, cap: Captured) -> None:
        """Called by the backward() patch: probe, then stop the script."""
        try:
            self.report["fingerprint"] = fingerprint(cap)
            if self.mode == "probe":
                self.probe_captured(cap)
        except CannotDrive as exc:
            self.harness_error("CannotDrive", f"{exc}. Use --entry MODULE:FUNCTION to name the model, batch, loss "
                               "and optimizer explicitly")
        except BaseException as exc:
            self.harness_error(type(exc).__name__, f"the probe failed: {exc}", traceback.format_exc())
            if is_oom(exc):
                self.report["oom"] = True
        finally:
            self.done = True
            if self.recorder is not None and self.mode != "observe":
                self.recorder.stop_requested = True
        if self.mode != "observe":  # "observe" (benchmarks): record, then let the script carry on
            raise StopProbe()

    # -- probing ------------------------------------------------------------------------------------------
    def probe_captured(self, cap: Captured) -> None:
        self.em.emit({"event": "captured", "batches_from_dataloader": cap.dataloader_batches})
        step = TapeStep(cap, sub_batch=int(self.cfg.get("sub_batch") or 8))
        model = step.models[0]
        model_site = cap.module_sites.get(unwrap(model)) or cap.module_sites.get(model)
        entry_site = step.model_entries[0].site if step.model_entries else None
        call = step.loss_call
        sites = {
            "model": model_site,
            "loss": (call.site if call is not None else None) or cap.backward_site,
            "loop": cap.backward_site,
            "optimizer": cap.optimizer_sites.get(step.optimizer) if step.optimizer is not None else None,
            "data": cap.dataloader_site or entry_site,
        }
        self.probe(step, scalar(step.loss_tensor), sites)

    def probe(self, step: Step, loss_value: float, sites: dict) -> None:
        wb = Workbench(step.models, step.optimizer)
        step.choose_sub_batch(wb)
        loss = loss_info(step.loss_call, loss_value)
        classes = loss.classes
        params = [p for m in wb.models for p in m.parameters()]
        device = str(params[0].device) if params else "cpu"
        opt = step.optimizer
        self.report.update({
            "device": device,
            "model": type(wb.models[0]).__name__,
            "parameters": sum(p.numel() for p in params),
            "optimizer": {"type": type(opt).__name__, "lr": [g.get("lr") for g in wb.optimizer.param_groups],
                          "note": wb.lr_note} if opt is not None else None,
            "loss": {"kind": loss.kind, "value": loss_value, "classes": classes},
            "batch": {"source": step.batch_source, "size": step.batch_size, "sub_batch": step.sub_batch},
            "copies": "in-place (snapshot/restore)" if wb.in_place else "deep copy",
            "sites": {k: {"path": v[0], "line": v[1]} for k, v in sites.items() if v},
        })
        if wb.in_place:
            self.report["copy_error"] = getattr(wb, "copy_error", "")
        ctx = ProbeContext(step, wb, loss, steps=int(self.cfg.get("steps") or 60), sites=sites,
                           progress=self.progress, device=device)
        wanted = [c for c in (self.cfg.get("checks") or CHECK_IDS) if c in CHECKS]
        for cid in wanted:
            self.em.emit({"event": "check-start", "check": cid})
            started = time.perf_counter()
            if cid in TRAINING_CHECKS and opt is None:
                res = CheckResult(cid, "skip", "no optimizer holds the model's parameters", site=sites.get("loop"))
            else:
                try:
                    res = CHECKS[cid](ctx)
                except Exception as exc:
                    what = "out of memory" if is_oom(exc) else f"{type(exc).__name__}: {exc}"
                    res = CheckResult(cid, "error", f"the check could not run: {what}", site=sites.get("model"),
                                      details={"traceback": traceback.format_exc()})
                    if is_oom(exc):
                        self.report["oom"] = True
                finally:
                    try:
                        wb.reset()
                    except Exception:
                        pass
            out = res.to_json(self.script)
            out["seconds"] = round(time.perf_counter() - started, 3)
            self.report["checks"].append(out)
            self.save()
            self.em.emit({"event": "check-end", "check": cid, "status": res.status, "message": res.message})

    def progress(self, check: str, i: int, n: int) -> None:
        self.em.emit({"event": "step", "check": check, "step": i, "total": n})

    # -- entry point --------------------------------------------------------------------------------------
    def run_entry(self, spec: str) -> int:
        from .entry import EntryStep, load_entry, unpack

        try:
            fn, site = load_entry(spec, self.cfg.get("cwd") or os.getcwd())
            model, batch, loss_fn, optimizer = unpack(fn())
            step = EntryStep(model, batch, loss_fn, optimizer, sub_batch=int(self.cfg.get("sub_batch") or 8))
            _, loss = step.observe()
        except CannotDrive as exc:
            return self.harness_error("CannotDrive", str(exc))
        except Exception as exc:
            self.report["error"] = {"type": type(exc).__name__, "message": str(exc), "traceback": user_traceback(exc),
                                    "oom": is_oom(exc), "source": "entry"}
            return 2
        self.report["fingerprint"] = {
            "loss": scalar(loss), "params": _checksum(p for p in model.parameters()),
            "batch": _checksum(iter_tensors(batch)),
        }
        if self.mode == "probe":
            call = step.loss_call
            sites = {"model": site, "loss": call.site if call is not None and call.site else site, "loop": site,
                     "optimizer": site, "data": site}
            try:
                self.probe(step, scalar(loss), sites)
            except Exception as exc:
                return self.harness_error(type(exc).__name__, f"the probe failed: {exc}", traceback.format_exc())
        self.done = True
        return self.exit_code()


def _checksum(tensors) -> list[float]:
    total, absolute = 0.0, 0.0
    with torch.no_grad():
        for t in tensors:
            if isinstance(t, torch.Tensor) and t.numel():
                d = t.detach().double()
                total += float(d.sum())
                absolute += float(d.abs().sum())
    return [total, absolute]


def fingerprint(cap: Captured) -> dict:
    """What must be identical between two fresh runs: first loss, initial weights, first batch."""
    models, batch = [], []
    for e in cap.tape:
        if e.kind == "module" and any(p.requires_grad for p in e.fn.parameters()):
            if all(e.fn is not m for m in models):
                models.append(e.fn)
            batch.extend(t for t in iter_tensors((e.args, e.kwargs)) if not t.requires_grad)
    params = [p for m in models for p in m.parameters()]
    return {"loss": scalar(cap.loss), "params": _checksum(params), "batch": _checksum(batch)}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    cfg: dict[str, Any] = json.loads(os.environ.get("TORCHSANITY_PROBE_CONFIG", "{}"))
    rank = int(os.environ.get("RANK", "0"))
    out_dir = cfg.get("out_dir") or os.getcwd()
    tag = cfg.get("tag", "main")
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not cfg.get("entry"):
        if not argv:
            print("usage: python -m torchsanity.probes.child SCRIPT [ARGS...]", file=sys.stderr)
            return 2
        cfg["script"] = argv[0]
        argv = argv[1:]
    else:
        cfg.setdefault("script", cfg["entry"])
    emitter = Emitter(os.path.join(out_dir, f"events-{tag}-{rank}.jsonl"))
    report: dict[str, Any] = {"script": cfg["script"], "rank": rank, "torch": torch.__version__, "checks": [],
                              "device": None}
    harness = Harness(cfg, emitter, report)
    harness.report_path = os.path.join(out_dir, f"report-{tag}-{rank}.partial.json")
    emitter.emit({"event": "start", "rank": rank, "pid": os.getpid()})
    if cfg.get("device") == "cuda" and not torch.cuda.is_available():
        code = harness.harness_error("NoCuda", f"--device cuda, but torch {torch.__version__} in {sys.executable} "
                                     "sees no CUDA device")
    elif cfg.get("entry"):
        code = harness.run_entry(cfg["entry"])
    else:
        code = harness.run_script(argv)
    report["exit_code"] = code
    harness.report_path = os.path.join(out_dir, f"report-{tag}-{rank}.json")
    harness.save()
    emitter.emit({"event": "done", "exit_code": code})
    return code


if __name__ == "__main__":
    code = main()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except Exception:
        pass
    os._exit(code)  # threads or worker processes the script started must not keep us alive
