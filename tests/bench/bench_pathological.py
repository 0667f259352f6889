"""Benchmark (a script, not a test; it asserts no time): pathological inputs through `torchsanity check`,
each next to a normal buggy file, measured side by side in one run.

    python tests/bench/bench_pathological.py                                # default budgets
    python tests/bench/bench_pathological.py --file-timeout 20 --file-memory 1024
    python tests/bench/bench_pathological.py --only and,5mb-literal

Inputs: 20,000-deep nesting of every expression kind (`not`, `and`, `or`, lambdas, attribute chains, `**`,
unary minus, ternaries, calls, call chains, subscripts, subscript chains, parentheses, brackets, dicts,
`+` chains, implicit string concatenation, f-strings), a 5 MB data literal and a 100,000-line file.

Target (issue 11): each costs at most its own budget (time and memory) and one line, and the buggy file
next to it is still reported. Printed for each input: wall time of the whole run, peak resident memory of
the largest process of the run (CLI or worker), the one line the input produced, and whether the run
stayed within the budget (time ≤ the file's budget plus the run's start-up, as measured on a normal file
alone; memory ≤ the baseline plus the memory budget). A normal file alone is the baseline row.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "robustness"))

from pathological import BUGGY, BUGGY_FINDING, NESTING, big_literal, many_lines, nested  # noqa: E402

# Runs the CLI as its only child and prints the peak RSS (KiB) of the largest process it waited for.
_MEASURE = """
import resource, subprocess, sys
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stdout.write(proc.stdout)
sys.stderr.write(proc.stderr)
print(f"@@peak {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss} {proc.returncode}")
"""


def inputs(only: set[str] | None) -> dict[str, str]:
    cases = {f"nest-{kind}": (lambda k=kind: nested(k, 20_000)) for kind in NESTING}
    cases["5mb-literal"] = lambda: big_literal(5)
    cases["100k-lines"] = lambda: many_lines(100_000)
    return {name: make() for name, make in cases.items() if only is None or name in only or name.removeprefix("nest-") in only}


def run(folder: Path, budget: list[str]) -> tuple[float, int, int, str]:
    cli = [sys.executable, "-m", "torchsanity.server", "check", "--no-config", "--no-cache", "-q", *budget, "."]
    began = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", _MEASURE, *cli], cwd=folder, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONIOENCODING="utf-8"))
    seconds = time.perf_counter() - began
    lines = proc.stdout.splitlines()
    _, peak, code = lines[-1].split()
    return seconds, int(peak) // 1024, int(code), "\n".join(lines[:-1]) + proc.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--file-timeout", type=float, default=None, help="the per-file time budget (default: the CLI's)")
    parser.add_argument("--file-memory", type=int, default=None, help="the per-file memory budget in MB (default: the CLI's)")
    parser.add_argument("--only", default=None, help="comma-separated input names (e.g. and,lambda,5mb-literal)")
    args = parser.parse_args()

    from torchsanity.server.check_workers import DEFAULT_FILE_MEMORY, DEFAULT_FILE_TIMEOUT

    seconds_budget = args.file_timeout if args.file_timeout is not None else DEFAULT_FILE_TIMEOUT
    memory_budget = args.file_memory if args.file_memory is not None else DEFAULT_FILE_MEMORY
    budget = ["--file-timeout", f"{seconds_budget:g}", "--file-memory", str(memory_budget)]
    print(f"per-file budget: {seconds_budget:g} s, {memory_budget} MB; Python {sys.version.split()[0]}, {os.cpu_count()} cores")

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "baseline"
        base.mkdir()
        (base / "buggy.py").write_text(BUGGY, encoding="utf-8")
        base_seconds, base_peak, _, _ = run(base, budget)
        print(f"{'input':<22} {'size':>8} {'time':>8} {'peak':>8}  within  line")
        print(f"{'(normal file alone)':<22} {'':>8} {base_seconds:>7.2f}s {base_peak:>6}MB  {'':6}  {BUGGY_FINDING}")
        within_all, one_line_all = True, True
        for name, text in inputs(set(args.only.split(",")) if args.only else None).items():
            folder = Path(tmp) / name
            folder.mkdir()
            (folder / "pathological.py").write_text(text, encoding="utf-8")
            (folder / "buggy.py").write_text(BUGGY, encoding="utf-8")
            seconds, peak, code, output = run(folder, budget)
            mine = [line for line in output.splitlines() if line.startswith("pathological.py:")]
            buggy_seen = any(line.startswith(BUGGY_FINDING) for line in output.splitlines())
            within = seconds <= seconds_budget + base_seconds + 1 and peak <= base_peak + memory_budget
            one_line = len(mine) <= 1 and buggy_seen and code in (0, 1)
            within_all &= within
            one_line_all &= one_line
            shown = mine[0].split(": ", 1)[1] if mine else "(no line: checked, nothing found)"
            print(f"{name:<22} {len(text) / 1e6:>7.2f}M {seconds:>7.2f}s {peak:>6}MB  {'yes' if within else 'NO':<6}  "
                  f"{shown[:110]}{'' if one_line else '  <-- NOT one line / buggy file lost'}", flush=True)
        print(f"\nall within budget: {'yes' if within_all else 'NO'}; "
              f"each at most one line and the buggy file reported: {'yes' if one_line_all else 'NO'}")


if __name__ == "__main__":
    main()
