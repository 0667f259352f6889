"""The child process: ``python -m torchsanity.probes.child SCRIPT [ARGS...]``.

Reads its configuration from ``TORCHSANITY_PROBE_CONFIG`` (JSON), installs the hooks before the script imports
anything, runs the script unmodified with ``runpy``, and at the first training ``backward()`` runs the checks on
the script's own model and optimizer (restored exactly afterwards), then stops the script with ``StopProbe`` (a
``BaseException``). A GAN's two steps are both probed; training in ``torch.multiprocessing`` workers is followed
(``workers.py``). Progress goes as JSON lines to ``events-<tag>-<rank>.jsonl`` and the result to
``report-<tag>-<rank>.json`` in the configured folder.
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

from .capture import Captured, Recorder, StopProbe
from .checks import CHECK_IDS, CHECKS
from .context import CheckResult, ProbeContext, loss_info, scalar
from .replay import CannotDrive, Step, TapeStep, iter_tensors
from .report import ProbeError, parse_report
from .script_run import is_oom, tie_to_guard, user_traceback
from .summary import summarize
from .warmup import WarmupFollow, zero_at
from .workbench import Workbench, unwrap
from .workers import adopt_worker_report, worker_report_path

TRAINING_CHECKS = {"overfit-batch", "generalization", "input-independence", "lr-range"}
FITTING_CHECKS = TRAINING_CHECKS - {"lr-range"}  # they train at the script's learning rate (lr-range sweeps its own)
OTHER_ROLE = {"generator": "discriminator", "discriminator": "generator"}
GAN_WAIT = 20  # training steps to wait for a GAN's other step (critics trained n_critic times per generator step)


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


class Harness:
    """Drives one run of the user's script (or entry point) and fills the report."""

    def __init__(self, cfg: dict, emitter: Emitter, report: dict):
        self.cfg = cfg
        self.em = emitter
        self.report = report
        self.script = cfg["script"]
        self.mode = cfg.get("mode", "probe")
        self.recorder: Recorder | None = None
        self.gan_role: str | None = None  # the role of a GAN's probed first step, while waiting for the other
        self.gan_first = 0
        self.pid = os.getpid()
        self.worker = False  # this process is a worker the script forked, followed by the probe
        self.out_dir = cfg.get("out_dir") or os.getcwd()
        self.rank = int(os.environ.get("RANK", "0"))
        self.done = False
        self.report_path: str | None = None
        self.follow: WarmupFollow | None = None  # following a warmup from lr 0 to a step past it

    def save(self) -> None:
        """Write the report as it stands (atomically), so a killed run keeps what was measured."""
        if not self.report_path:
            return
        report = parse_report(json.loads(json.dumps(self.report, default=str)))
        with open(self.report_path + ".tmp", "w", encoding="utf-8") as fh:
            json.dump(report, fh)
        os.replace(self.report_path + ".tmp", self.report_path)

    # -- running the script -------------------------------------------------------------------------------
    def run_script(self, argv: list[str]) -> int:
        self.recorder = Recorder(self.on_backward, step=int(self.cfg.get("step") or 1))
        self.recorder.install()
        script = os.path.abspath(self.script)
        sys.argv = [script] + list(argv)
        sys.path[0] = os.path.dirname(script)
        exit_code = None
        try:
            runpy.run_path(script, run_name="__main__")
        except StopProbe:
            pass
        except SystemExit as exc:
            exit_code = exc.code
        except KeyboardInterrupt:
            self.report["cancelled"] = True
            return 2
        except BaseException as exc:  # the script's own exception
            self.report["error"] = ProbeError(type(exc).__name__, str(exc), "script", user_traceback(exc),
                                              oom=is_oom(exc)).to_json()
            if is_oom(exc):
                self.report["oom"] = True
            return 2
        finally:
            self.recorder.uninstall()
        if self.follow is not None:
            self.follow.script_ended()
        if not self.done:
            try:
                self.recorder.finish()  # a backward() whose step never came: the best there is
            except StopProbe:
                pass
        if not self.done and self.follow is not None and self.follow.last is not None:
            try:  # the script ended inside the warmup the probe was following: the last step it reached
                self.on_backward(self.follow.last)
            except StopProbe:
                pass
        if self.gan_role is not None:
            self.note(f"a GAN: the {self.gan_role} step was probed; the script ended before the "
                      f"{OTHER_ROLE[self.gan_role]}'s step")
        if not self.done and self.recorder.process_site is not None:
            tag = self.cfg.get("tag", "main")
            worker = adopt_worker_report(self.out_dir, tag, self.rank, self.recorder.process_site)
            if worker is not None:  # a forked worker was followed and probed
                self.report.clear()
                self.report.update(worker)
                return self.exit_code()
        if not self.done:
            return self.harness_error(*self.nothing_to_probe(exit_code))
        return self.exit_code()

    def nothing_to_probe(self, exit_code: Any) -> tuple[str, str]:
        """Why the script gave no training step to probe."""
        rec = self.recorder
        hint = ("If training sits behind a command-line flag, pass it after --; otherwise use --entry "
                "MODULE:FUNCTION returning (model, batch, loss_fn, optimizer)")
        if rec is not None and rec.process_site is not None and not rec.training_steps:
            return "SpawnedWorkers", (f"the script trains in multiprocessing.Process workers (started at line "
                                      f"{rec.process_site[1]}) that the probe could not follow: they were started with "
                                      "the 'spawn' or 'forkserver' method, or none reached a training step. Use the "
                                      "'fork' start method, mp.spawn, call the worker function directly, or --entry "
                                      "MODULE:FUNCTION")
        if rec is not None and rec.spawn_site is not None and not rec.training_steps:
            return "NoBackward", (f"the probe ran the first of the {rec.spawn_nprocs} mp.spawn workers (line "
                                  f"{rec.spawn_site[1]}) in its own process (rank 0 of 1), and it finished without a "
                                  f"training step. {hint}")
        wanted = int(self.cfg.get("step") or 1)
        if rec is not None and rec.training_steps and wanted > rec.training_steps:
            return "NoSuchStep", (f"--step {wanted} asks for training step {wanted}, but the script ended after "
                                  f"{rec.training_steps} step(s)")
        demos = ""
        if rec is not None and rec.skipped_backwards:
            demos = (f" (it called backward() {rec.skipped_backwards} time(s) on tensors that reach no model or "
                     "optimizer parameter — autograd demos, not training)")
        if exit_code is not None:
            first = "first training backward()" if demos else "first backward()"
            return "ScriptExited", (f"the script exited (code {exit_code}) before its {first}{demos}: "
                                    f"nothing to probe. {hint}")
        if demos:
            return "NoBackward", f"the script finished without a training backward(){demos}: nothing to probe. {hint}"
        return "NoBackward", f"the script finished without calling backward(): nothing to probe. {hint}"

    def note(self, text: str | None) -> None:
        """Record a change the harness made or a choice it took, for the report's text."""
        if text:
            self.report.setdefault("notes", []).append(text)

    def harness_error(self, kind: str, message: str, tb: str | None = None) -> int:
        self.report["error"] = ProbeError(kind, message, "harness", tb or None).to_json()
        return 2

    def exit_code(self) -> int:
        if "error" in self.report:
            return 2
        statuses = {c["status"] for c in self.report.get("checks", [])}
        return 1 if "fail" in statuses else (2 if "error" in statuses else 0)

    def on_backward(self, cap: Captured) -> None:
        """Called at the training step: probe, then stop the script (``resume`` in the configuration: let it carry
        on from the state the probe gave back, as the restore test does; "observe" mode never probes)."""
        if os.getpid() != self.pid:  # in a worker forked by the script's multiprocessing.Process
            self.follow_worker()
        if self.gan_role is not None:
            return self.on_gan_step(cap)
        try:
            if self.follows_warmup(cap):
                return
        except Exception:  # following is an extra: on failure, probe this step as it is
            if self.follow is not None:
                self.follow.give_up()
        role = None
        try:
            if self.follow is None:  # else the first step's, taken when following began
                self.report["fingerprint"] = fingerprint(cap)
            skipped = self.recorder.skipped_backwards if self.recorder else 0
            self.report["step"] = {"index": cap.training_step, "followed_by": cap.followed_by,
                                   "skipped_backwards": skipped}
            self.note(step_note(cap, skipped, followed=self.follow is not None))
            if self.follow is not None:
                self.report["step"]["warmup"] = self.follow.to_json()
                self.note(self.follow.note())
            rec = self.recorder
            if rec is not None and rec.spawn_site is not None:
                self.note(f"the script trains in {rec.spawn_nprocs} mp.spawn workers (line {rec.spawn_site[1]}): the "
                          "probe ran the first one in its own process, as rank 0 of a world of one")
            if self.mode == "probe":
                role = self.probe_captured(cap, self.report["step"])
        except CannotDrive as exc:
            self.harness_error("CannotDrive", f"{exc}. Use --entry MODULE:FUNCTION to name the model, batch, loss "
                               "and optimizer explicitly")
        except BaseException as exc:
            self.harness_error(type(exc).__name__, f"the probe failed: {exc}", traceback.format_exc())
            if is_oom(exc):
                self.report["oom"] = True
        finally:
            self.done = True
        if role is not None and "error" not in self.report and self.recorder is not None:
            self.gan_role, self.gan_first = role, cap.training_step  # go on to the other model's step
            self.recorder.resume(cap.training_step + 1, cap.tape)
            return
        if self.mode != "observe" and not self.cfg.get("resume"):
            if self.recorder is not None:
                self.recorder.stop_requested = True
            self.stop()

    def follows_warmup(self, cap: Captured) -> bool:
        """At a training step where every group's learning rate is 0, when the user did not pick the step: let the
        script train on to a step past the warmup (``warmup.py``); True while it does."""
        if self.recorder is None:
            return False
        if self.follow is None:
            opt = cap.stepped_optimizer
            if self.mode != "probe" or self.cfg.get("step_given") or opt is None or not zero_at(opt):
                return False
            self.report["fingerprint"] = fingerprint(cap)  # the first step's: what the determinism run compares
            self.follow = WarmupFollow(opt, cap.training_step, timeout=self.cfg.get("timeout"))
            self.follow.last = cap
        elif not self.follow.see(cap.training_step, cap):
            return False
        event = self.follow.progress_event()
        if event is not None:
            self.em.emit(event)
        self.recorder.resume(cap.training_step + 1, [])
        return True

    def stop(self) -> None:
        """Stop the script after probing; a followed worker writes its report for the main process and ends."""
        if not self.worker:
            raise StopProbe()
        self.report["exit_code"] = self.exit_code()
        self.report_path = worker_report_path(self.out_dir, self.cfg.get("tag", "main"), self.rank)
        self.save()
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(0)

    def follow_worker(self) -> None:
        """The first worker the script forked is probed; the others end at their first training step."""
        self.pid, self.worker = os.getpid(), True
        rec = self.recorder
        if rec is None or rec.process_site is None or rec.first_worker_pid is not None:
            os._exit(0)
        site = rec.process_site
        self.report_path = worker_report_path(self.out_dir, self.cfg.get("tag", "main"), self.rank) + ".partial"
        self.note(f"followed the training into the first multiprocessing.Process worker the script started"
                  f"{f' (line {site[1]})' if site else ''}; the checks ran there")

    def on_gan_step(self, cap: Captured) -> None:
        """A training step after a GAN's first probed step: probe it when it trains the other model, else wait for
        that step (a critic trained several times per generator step) up to ``GAN_WAIT`` steps."""
        first, partner = self.gan_role, OTHER_ROLE[self.gan_role]
        info: dict[str, Any] = {"index": cap.training_step, "followed_by": cap.followed_by, "role": partner}
        done = True
        try:
            step = self.replayable(cap)
            if step.role == first and cap.training_step - self.gan_first < GAN_WAIT:
                done = False
            elif step.role != partner:
                self.note(f"a GAN: the {first} step was probed; training step {cap.training_step} is not the "
                          f"{partner}'s step, so the {partner} step was not probed")
            else:
                self.report["step"]["partner"] = info
                self.note(f"a GAN: the {first} step (training step {self.gan_first}) and the {partner} step "
                          f"(training step {cap.training_step}) were both probed; each verdict names its step")
                self.probe_captured(cap, info, step)
        except CannotDrive as exc:
            self.note(f"a GAN: the {partner} step (training step {cap.training_step}) could not be replayed: {exc}")
        except Exception as exc:
            self.note(f"a GAN: probing the {partner} step failed: {type(exc).__name__}: {exc}")
        if not done:
            self.recorder.resume(cap.training_step + 1, cap.tape)
            return
        self.gan_role = None
        if self.recorder is not None and not self.cfg.get("resume"):
            self.recorder.stop_requested = True
            self.stop()

    # -- probing ------------------------------------------------------------------------------------------
    def replayable(self, cap: Captured) -> TapeStep:
        return TapeStep(cap, sub_batch=int(self.cfg.get("sub_batch") or 8), batch_dim=self.cfg.get("batch_dim"))

    def probe_captured(self, cap: Captured, info: dict, step: TapeStep | None = None) -> str | None:
        """Probe the captured step (``info``: the report's entry for it); its GAN role, if it has one."""
        self.em.emit({"event": "captured", "batches_from_dataloader": cap.dataloader_batches})
        step = step or self.replayable(cap)
        if step.role:
            info["role"] = step.role
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
        if step.optimizer is None and cap.followed_by == "parameter update":
            self.hand_written_sgd(step, cap)
        self.probe(step, scalar(step.loss_tensor), sites, info)
        return step.role

    def hand_written_sgd(self, step: TapeStep, cap: Captured) -> None:
        """A script that updates its parameters by hand: the training checks use plain SGD at the learning rate
        read off that update, or are skipped with the reason."""
        if cap.update_lr is None:
            step.no_optimizer_reason = (f"no optimizer, and {cap.update_reason}: the training checks cannot repeat "
                                        "the script's update")
            self.note(f"the parameters are updated by hand; {cap.update_reason}, so the training checks are skipped")
            return
        params = [p for m in step.models for p in m.parameters() if p.requires_grad]
        step.optimizer = torch.optim.SGD(params, lr=cap.update_lr)
        self.note(f"the parameters are updated by hand: the training checks use plain torch.optim.SGD at the "
                  f"script's learning rate {cap.update_lr:.3g} (read off its update p -= lr * p.grad)")

    def probe(self, step: Step, loss_value: float, sites: dict, info: dict) -> None:
        """Run the wanted checks on the script's own model and optimizer, then give them back exactly; ``info``:
        the report's entry for the step (the first step's: ``report["step"]``)."""
        wb = Workbench(step.models, step.optimizer, also=step.other_models)
        try:
            self._probe(step, wb, loss_value, sites, info)
        finally:
            restored = wb.restore()
            info["restore"] = restored
            if not restored["identical"]:
                self.note("the probe could not give the script its state back exactly: "
                          + ", ".join(restored["differences"]))
            self.save()

    def _probe(self, step: Step, wb: Workbench, loss_value: float, sites: dict, info: dict) -> None:
        step.choose_sub_batch(wb)
        loss = loss_info(step.loss_call, loss_value, step.loss_reduction())
        classes = loss.classes
        params = [p for m in wb.models for p in m.parameters()]
        device = str(params[0].device) if params else "cpu"
        opt = step.optimizer
        top = info if info is not self.report.get("step") else self.report  # a GAN's second step: its own entry
        top.update({
            "device": device,
            "model": type(wb.models[0]).__name__,
            "parameters": sum(p.numel() for p in params),
            "optimizer": {"type": type(opt).__name__, "lr": [g.get("lr") for g in wb.optimizer.param_groups],
                          "note": wb.lr_note} if opt is not None else None,
            "loss": {"kind": loss.kind, "value": loss_value, "classes": classes},
            "batch": {"source": step.batch_source, "size": step.batch_size, "sub_batch": step.sub_batch,
                      "dim": step.batch_dim, "dim_from": step.batch_dim_source},
            "copies": "none: the checks train the script's own model and optimizer, restored exactly afterwards",
            "sites": {k: {"path": v[0], "line": v[1]} for k, v in sites.items() if v},
        })
        self.note(wb.lr_note)
        try:  # model summary, first-layer filters, thumbnails (before any check trains): never fails the probe
            top["summary"] = summarize(wb.models, step.input_tensors(), step.batch_dim, loss.input)
        except Exception as exc:
            self.note(f"no model summary: {type(exc).__name__}: {exc}")
        if step.batch_dim != 0:
            self.note(f"the batch is dimension {step.batch_dim} of the inputs (from {step.batch_dim_source})")
        elif step.list_batch:
            self.note(f"the batch is {step.batch_dim_source}: sub-batches take samples from the list")
        ctx = ProbeContext(step, wb, loss, steps=int(self.cfg.get("steps") or 60), sites=sites,
                           progress=self.progress, device=device, allow_mixing=bool(self.cfg.get("allow_mixing")))
        ctx.warmup = self.follow.skip_reason() if self.follow is not None else None
        asked = self.cfg.get("checks")  # [] when only the parent's determinism was asked for: none here
        wanted = [c for c in (CHECK_IDS if asked is None else asked) if c in CHECKS]
        later = info.get("index", 1) if info is not self.report["step"].get("partner") else self.gan_first
        ctx.probed_step = later
        for cid in wanted:
            self.em.emit({"event": "check-start", "check": cid})
            started = time.perf_counter()
            role_skip = role_skip_reason(step, cid)
            if role_skip:
                res = CheckResult(cid, "skip", role_skip, site=sites.get("model"))
            elif cid in TRAINING_CHECKS and opt is None:
                res = CheckResult(cid, "skip", step.no_optimizer_reason or "no optimizer holds the model's parameters",
                                  site=sites.get("loop"))
            elif cid in FITTING_CHECKS and ctx.zero_lr_reason():
                res = CheckResult(cid, "skip", ctx.zero_lr_reason(), site=sites.get("optimizer") or sites.get("loop"))
            elif cid == "initial-loss" and later > 1:
                why = "past a warmup from learning rate 0" if self.follow is not None else f"--step {later}"
                res = CheckResult(cid, "skip", f"judges the loss at initialisation; training step {later} was probed "
                                  f"({why})", loss_value, None, sites.get("loss"))
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
            if step.role:  # which of a GAN's two steps this verdict is about
                out["message"] = f"{step.role} step: {out['message']}"
                out["details"] = dict(out.get("details") or {}, step=step.role)
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
            step = EntryStep(model, batch, loss_fn, optimizer, sub_batch=int(self.cfg.get("sub_batch") or 8),
                             batch_dim=self.cfg.get("batch_dim"))
            _, loss = step.observe()
        except CannotDrive as exc:
            return self.harness_error("CannotDrive", str(exc))
        except Exception as exc:
            self.report["error"] = ProbeError(type(exc).__name__, str(exc), "entry", user_traceback(exc),
                                              oom=is_oom(exc)).to_json()
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
                self.probe(step, scalar(loss), sites, self.report.setdefault("step", {}))
            except Exception as exc:
                return self.harness_error(type(exc).__name__, f"the probe failed: {exc}", traceback.format_exc())
        self.done = True
        return self.exit_code()


def role_skip_reason(step: Step, cid: str) -> str | None:
    """Why a check does not apply to a GAN generator's step (its input is noise; the critic mixes the batch)."""
    if step.role != "generator":
        return None
    if cid in ("input-independence", "generalization", "data-stats"):
        return "the generator's input is random noise, not data: this check judges what a model learns from data"
    if cid == "batch-independence":
        for m in step.other_models:
            for mod in m.modules():
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm) and mod.training:
                    return (f"the discriminator ({type(m).__name__}) normalises the generated batch with the batch's "
                            f"own statistics ({type(mod).__name__} in train mode): the samples mix on purpose")
    return None


def step_note(cap: Captured, skipped: int, followed: bool = False) -> str | None:
    """Which backward() was probed, when it is not simply the first one (``followed``: past a warmup, which the
    warmup's own note tells)."""
    parts = []
    if skipped:
        parts.append(f"skipped {skipped} backward() call(s) that reach no parameter (autograd demos)")
    if cap.training_step > 1 and not followed:
        parts.append(f"probed training step {cap.training_step}")
    if cap.followed_by == "parameter update":
        parts.append("the parameters were updated by hand (no optimizer step) after this backward()")
    elif cap.followed_by == "end of script":
        parts.append("no optimizer step followed this backward() before the script ended")
    return "; ".join(parts) if parts else None


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
    tie_to_guard()
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
