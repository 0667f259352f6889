"""`torchsanity probe SCRIPT [-- ARGS]`: run the runtime sanity probes and print / save the verdicts."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from ..probes.budget import BUDGET_S, PROBE_TIMEOUT_S
from . import probe_report
from .probe_progress import Progress
from .probe_runner import CHECK_IDS, DEFAULT_STEPS, run_probe


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Run Karpathy's sanity checks on an unmodified training script: the script runs in a "
                          "child process until its first backward(), then the checks run on its own model and optimizer, "
                          "restored exactly afterwards. "
                          "The script's own arguments go last, after --: probe [options] train.py -- --epochs 3")
    parser.add_argument("script", nargs="?", help="the training script (optional with --entry)")
    parser.add_argument("script_args", nargs="*", metavar="-- ARGS", help="arguments for the script, after --")
    parser.add_argument("--checks", default=None,
                        help=f"comma-separated subset of: {', '.join(CHECK_IDS)} (default: all)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"optimizer steps for the overfitting checks (default {DEFAULT_STEPS})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="auto: the script's own choice; cpu hides GPUs; cuda requires one")
    parser.add_argument("--timeout", type=float, default=PROBE_TIMEOUT_S,
                        help=f"seconds before the whole process tree is stopped (default {PROBE_TIMEOUT_S:.0f}: "
                        "enough for an ImageNet-size ResNet-50 on CPU, each check within its --check-budget)")
    parser.add_argument("--check-budget", type=float, default=None, dest="check_budget", metavar="SECONDS",
                        help="seconds each training check may run before it stops with a partial result (default: "
                        + ", ".join(f"{c} {s:.0f}" for c, s in BUDGET_S.items()) + ")")
    parser.add_argument("--entry", default=None, metavar="MODULE:FUNCTION",
                        help="explicit entry point returning (model, batch, loss_fn, optimizer)")
    parser.add_argument("--nproc-per-node", type=int, default=None, dest="nproc_per_node",
                        help="launch through torchrun with N processes per node; report rank 0")
    parser.add_argument("--step", type=int, default=None, metavar="N",
                        help="probe the N-th training step (a backward() followed by an optimizer step; default 1)")
    parser.add_argument("--batch-dim", type=int, default=None, dest="batch_dim", metavar="D",
                        help="the inputs' batch dimension (default: found from the DataLoader and the model)")
    parser.add_argument("--allow-mixing", action="store_true", dest="allow_mixing",
                        help="the model mixes samples on purpose: skip batch-independence")
    parser.add_argument("--python", default=None, help="interpreter to run the script with (default: this one)")
    parser.add_argument("--format", choices=("text", "json", "html"), default=None,
                        help="output format (default text; html when --output ends in .html)")
    parser.add_argument("--output", "-o", default=None, help="write the report to this file")


def _checks(value: str | None) -> list[str] | None:
    if not value:
        return None
    items = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [c for c in items if c not in CHECK_IDS]
    if unknown:
        raise ValueError(f"unknown check(s): {', '.join(unknown)}; choose from {', '.join(CHECK_IDS)}")
    return items


class StopOnSignal:
    """While probing, SIGTERM, SIGHUP and SIGINT (``timeout``, a closed terminal, Ctrl-C) cancel the probe: the
    runner ends the script's whole process tree and returns, and ``signum`` says which signal it was."""

    SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP", "SIGINT") if hasattr(signal, name))

    def __init__(self) -> None:
        self.cancel = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopOnSignal":
        for signum in self.SIGNALS:
            try:
                self._previous[signum] = signal.signal(signum, self._on_signal)
            except (ValueError, OSError):  # not the main thread: the caller handles its signals
                pass
        return self

    def __exit__(self, *exc) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _on_signal(self, signum, _frame) -> None:
        self.signum = self.signum or signum
        self.cancel.set()


def _show_verdicts(report: dict) -> None:
    """The verdict table on stdout: a rich table on a terminal, plain text otherwise."""
    if not sys.stdout.isatty():
        text = probe_report.render_text(report)
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    from rich.console import Console

    console = Console()
    for note in probe_report.notes(report):
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print(probe_report.rich_table(report, console.width))
    err = probe_report.error_text(report)
    if err:
        console.print(err, style="bold red", markup=False, highlight=False)
    console.print(probe_report.verdict_line(report), markup=False, highlight=False)


def run(args: argparse.Namespace) -> int:
    script_args = list(args.script_args or [])
    if script_args and script_args[0] == "--":
        script_args = script_args[1:]
    fmt = args.format or ("html" if args.output and args.output.endswith(".html") else "text")
    if not args.script and not args.entry:
        print("torchsanity probe: give a training script (or --entry MODULE:FUNCTION)", file=sys.stderr)
        return 2
    try:
        checks = _checks(args.checks)
    except ValueError as exc:
        print(f"torchsanity probe: {exc}", file=sys.stderr)
        return 2
    live = fmt == "text" and sys.stderr.isatty()
    progress = Progress(live, checks or list(CHECK_IDS), args.steps or DEFAULT_STEPS, args.timeout,
                        args.check_budget)
    try:
        with StopOnSignal() as stop, progress:
            outcome = run_probe(args.script or "", script_args, python=args.python, checks=checks, steps=args.steps,
                                device=args.device, timeout=args.timeout, entry=args.entry,
                                nproc_per_node=args.nproc_per_node, on_event=progress.on_event, cancel=stop.cancel,
                                step=args.step, batch_dim=args.batch_dim, allow_mixing=args.allow_mixing,
                                check_budget=args.check_budget)
    except ValueError as exc:
        print(f"torchsanity probe: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the handlers were in place
        print("torchsanity probe: interrupted; the script's processes were stopped", file=sys.stderr)
        return 2
    if stop.signum is not None:
        try:
            print(f"torchsanity probe: interrupted by {signal.Signals(stop.signum).name}; the script and every "
                  "process it started were stopped", file=sys.stderr)
        except OSError:  # the terminal is gone (SIGHUP)
            pass
        return 2
    report = outcome.report
    if fmt == "json":
        text = json.dumps(report, indent=2, default=str)
    elif fmt == "html":
        text = probe_report.render_html(report)
    else:
        text = probe_report.render_text(report)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as fh:
            fh.write(text)
        if fmt != "text":
            _show_verdicts(report)  # the file holds the report; the console still gets the verdicts
        print(f"report written to {args.output} — {probe_report.verdict_line(report)}", file=sys.stderr)
    elif fmt == "text":
        _show_verdicts(report)
    else:
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
    if report.get("error") and report["error"].get("source") == "script" and fmt != "text":
        print(probe_report.error_text(report), file=sys.stderr)
    return outcome.exit_code
