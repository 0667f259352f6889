"""`torchsanity watch SCRIPT [-- ARGS]`: run a training script to its end under low-overhead hooks, print the
verdicts as they fire, then a summary; optionally keep the metrics (JSON lines) and an HTML report."""

from __future__ import annotations

import argparse
import json
import signal
import sys

from ..probes import WATCH_EVERY
from . import watch_report
from .probe_command import StopOnSignal
from .watch_dashboard import Display, WatchState
from .watch_runner import watch

DEFAULT_METRICS = "torchsanity-watch.jsonl"
DEFAULT_HTML = "torchsanity-watch.html"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = ("Watch an unmodified training script run: loss, learning rates and gradient norms every "
                          "step, per-layer statistics every K steps, and verdicts (non-finite values, divergence, "
                          "plateau, vanishing / exploding gradients, update / weight ratios, a schedule that never "
                          "moves) as they fire. The script's own arguments go last, after --: "
                          "watch [options] train.py -- --epochs 3")
    parser.add_argument("script", help="the training script")
    parser.add_argument("script_args", nargs="*", metavar="-- ARGS", help="arguments for the script, after --")
    parser.add_argument("--steps", type=int, default=None, help="stop after N optimizer steps (default: run to the end)")
    parser.add_argument("--epochs", type=int, default=None, help="stop after N epochs (default: run to the end)")
    parser.add_argument("--timeout", type=float, default=None,
                        help="stop after S seconds; the whole process tree is stopped (default: no limit)")
    parser.add_argument("--every", type=int, default=WATCH_EVERY,
                        help=f"per-layer statistics every K optimizer steps (default {WATCH_EVERY})")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="cpu hides every GPU from the script; cuda requires one (default auto: as the script does)")
    parser.add_argument("--metrics", default=None, metavar="FILE.jsonl",
                        help=f"the recorded metrics, one JSON object per line, written as the run goes "
                             f"(default {DEFAULT_METRICS}, written at the end)")
    parser.add_argument("--output", "-o", default=None, metavar="REPORT.html",
                        help=f"the HTML report (verdicts and every curve), written at the end (default {DEFAULT_HTML})")
    parser.add_argument("--tensorboard", default=None, metavar="DIR",
                        help="also write TensorBoard event files into DIR as the run goes (needs the tensorboard "
                             "package)")
    parser.add_argument("--live", choices=("auto", "on", "off"), default="auto",
                        help="the live dashboard on stderr: auto (on a terminal), on, or off (plain progress lines)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format (default text)")
    parser.add_argument("--nproc-per-node", type=int, default=None, dest="nproc_per_node", metavar="N",
                        help="run the script under torchrun with N processes: every rank is watched, rank 0 reports "
                             "(and parameters drifting apart across ranks are a verdict)")
    parser.add_argument("--python", default=None, help="interpreter to run the script with (default: this one)")


def _stderr(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:  # the terminal is gone (SIGHUP)
        pass


def render_text(report: dict) -> str:
    """The summary and the verdicts, with what to do about each."""
    s = report.get("summary", {})
    head = f"torchsanity watch: {report.get('script')} — {report.get('steps', 0)} step(s), {_stopped(report)}"
    out = [head]
    if s.get("first_loss") is not None:
        out.append(f"  loss {s['first_loss']:.4g} → {s['last_loss']:.4g} (best {s['best_loss']:.4g} at step "
                   f"{s['best_step']})" + (f"; median step {s['median_step_seconds'] * 1e3:.3g} ms"
                                           if s.get("median_step_seconds") else ""))
    for v in report.get("verdicts", []):
        out.append(f"  step {v['step']:<6} {v['id']}: {v['message']}")
        out.append(f"         what to do: {v['advice']}")
        out.append(f"         criterion: {v['criterion']}")
    err = report.get("error")
    if err:
        out.append("")
        out.append(("The script raised " if err.get("source") == "script" else "") +
                   f"{err.get('type')}: {err.get('message')}")
        if err.get("traceback"):
            out.append(err["traceback"].rstrip())
    out.append(verdict_line(report))
    return "\n".join(out) + "\n"


def _stopped(report: dict) -> str:
    stopped = report.get("stopped")
    return {"finished": "ran to its end", "exit": "the script exited", "steps": "stopped at --steps",
            "timeout": "stopped at --timeout", "epochs": "stopped at --epochs", "error": "the script raised", "killed": "killed"}.get(
        stopped, f"stopped by {stopped}")


def verdict_line(report: dict) -> str:
    verdicts = report.get("verdicts", [])
    if report.get("error"):
        return f"ERROR: {report['error'].get('type')}" + (f" ({len(verdicts)} verdict(s))" if verdicts else "")
    if verdicts:
        return f"VERDICTS: {len(verdicts)} ({', '.join(v['id'] for v in verdicts)})"
    return "OK: no verdicts"


def run(args: argparse.Namespace) -> int:
    script_args = list(args.script_args or [])
    if script_args and script_args[0] == "--":
        script_args = script_args[1:]
    board = None
    if args.tensorboard:
        from . import watch_tensorboard

        if not watch_tensorboard.available():
            print(watch_tensorboard.MISSING, file=sys.stderr)
            return 2
        board = watch_tensorboard.TensorBoardWriter(args.tensorboard)
    display = Display(WatchState(args.script, args.steps, args.epochs),
                      live=None if args.live == "auto" else args.live == "on")

    def on_records(records: list[dict]) -> None:
        display.records(records)
        if board is not None:
            board.records(records)

    try:
        with StopOnSignal() as stop, display:
            outcome = watch(args.script, script_args, every=args.every, steps=args.steps, epochs=args.epochs,
                            timeout=args.timeout, device=args.device, metrics=args.metrics, python=args.python,
                            nproc_per_node=args.nproc_per_node,
                            keep_metrics=None if args.metrics else DEFAULT_METRICS, on_output=display.output,
                            on_records=on_records, on_verdict=display.verdict, cancel=stop.cancel)
    except ValueError as exc:
        print(f"torchsanity watch: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # before the handlers were in place
        print("torchsanity watch: interrupted; the script's processes were stopped", file=sys.stderr)
        return 2
    finally:
        if board is not None:
            board.close()
    report = outcome.report
    if stop.signum is not None:
        report["stopped"] = signal.Signals(stop.signum).name
        _stderr(f"torchsanity watch: stopped by {report['stopped']} after {report['steps']} step(s); the script and "
                "every process it started were stopped, the report is kept")
    if board is not None:
        report["tensorboard"] = board.path
    output = args.output or DEFAULT_HTML
    try:
        with open(output, "w", encoding="utf-8") as fh:
            fh.write(watch_report.render_html(report))
        kept = f", metrics in {report['metrics']}" if report.get("metrics") else ""
        _stderr(f"report written to {output}{kept} — {verdict_line(report)}")
        if report.get("metrics_error"):
            _stderr(f"torchsanity watch: {report['metrics_error']}")
    except OSError as exc:
        _stderr(f"torchsanity watch: cannot write the report to {output}: {exc}")
    try:
        if args.format == "json":
            sys.stdout.write(json.dumps(report, indent=2) + "\n")
        else:
            sys.stdout.write(render_text(report))
        sys.stdout.flush()
    except OSError:
        pass
    return outcome.exit_code
