"""Benchmark (a script, not a test; it asserts no time): `torchsanity check` against TorchFix and against
bare `libcst.parse_module`, on the same real PyTorch training scripts, measured side by side in one run.

    python tests/bench/bench_check.py                  # labml_nn's training scripts (see below)
    python tests/bench/bench_check.py DIR_OR_FILES...   # any other set
    python tests/bench/bench_check.py --max-lines 20000 --jobs 4

The default corpus is the training code shipped in the `labml-nn` wheel (MIT; annotated research
implementations: `experiment.py` / `train*.py` / `mnist.py` / `cifar*.py` scripts with their training loops,
plus the `__init__.py` of their packages, which hold the models). Install it without its dependencies:
`pip install --no-deps labml-nn` (the `bench` extra). Without it, the training-related modules shipped inside
the torch wheel are used (`torch/optim`, `torch/testing/_internal/common_fsdp.py`, …), which are less
representative. The files are copied to a temporary directory, checked as one project.

Targets: at least 5x TorchFix's throughput (issue 2), and the engine within 2x of bare parsing (issue 12).
Only the chosen files are copied, so imports of modules left out do not resolve: to see the cost of following
sibling modules, pass a whole package directory (e.g. labml_nn's).
Printed: the file set, each measurement, both ratios, and where our time goes (parse / program model /
each rule / positions of findings) so a miss can be traced; and the cost of the project index's summaries
(CPython's ``ast``, no second libcst parse) relative to bare parsing.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

TRAINING_FILE = re.compile(r"experiment|train|mnist|cifar", re.IGNORECASE)
TORCH_IMPORT = re.compile(r"^\s*(import torch|from torch)", re.MULTILINE)


# ---- the file set ------------------------------------------------------------------------------------------


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # locates without importing (labml_nn imports labml)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def _lines(path: Path) -> int:
    return path.read_bytes().count(b"\n")


def labml_files(max_lines: int, max_files: int) -> tuple[str, Path, list[Path]] | None:
    root = _package_dir("labml_nn")
    if root is None:
        return None
    torch_files = sorted(p for p in root.rglob("*.py") if TORCH_IMPORT.search(p.read_text(encoding="utf-8", errors="replace")))
    training = [p for p in torch_files if TRAINING_FILE.search(p.relative_to(root).as_posix())]
    packages = []
    for folder in sorted({p.parent for p in training}):
        init = folder / "__init__.py"
        if init in torch_files and init not in training:
            packages.append(init)
    chosen, total = [], 0
    for path in training + packages:
        if len(chosen) >= max_files or total >= max_lines:
            break
        chosen.append(path)
        total += _lines(path)
    try:
        label = f"labml-nn {version('labml-nn')}"
    except PackageNotFoundError:
        label = "labml_nn"
    return label, root.parent, chosen


def torch_files(max_lines: int, max_files: int) -> tuple[str, Path, list[Path]]:
    root = _package_dir("torch")
    assert root is not None, "torch is not installed"
    candidates = sorted(root.glob("optim/*.py")) + sorted(root.glob("testing/_internal/common_fsdp.py"))
    candidates += sorted(root.glob("testing/_internal/distributed/_shard/*.py"))
    candidates += sorted(root.glob("utils/benchmark/examples/*.py")) + sorted(root.glob("nn/modules/*.py"))
    chosen, total = [], 0
    for path in candidates:
        if len(chosen) >= max_files or total >= max_lines:
            break
        chosen.append(path)
        total += _lines(path)
    return f"torch {version('torch')} (training-related modules)", root.parent, chosen


def explicit_files(paths: list[str]) -> tuple[str, Path, list[Path]]:
    files: list[Path] = []
    for raw in paths:
        path = Path(raw)
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    root = Path(os.path.commonpath([str(p.resolve().parent) for p in files]))
    return "the given paths", root, [p.resolve() for p in files]


def copy_set(root: Path, files: list[Path], target: Path) -> list[Path]:
    copied = []
    for path in files:
        destination = target / path.resolve().relative_to(root.resolve())
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, destination)
        copied.append(destination)
    return copied


# ---- measurements ------------------------------------------------------------------------------------------


def timed(fn):
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def bare_parse(texts: dict[Path, str]) -> float:
    import libcst as cst

    def run():
        for text in texts.values():
            try:
                cst.parse_module(text)
            except cst.ParserSyntaxError:
                pass

    return timed(run)[0]


def engine_in_process(texts: dict[Path, str], root: Path):
    from torchsanity.analyzers import Config, Project, analyze_source

    project = Project(root)
    config = Config()

    def run():
        return [analyze_source(text, str(path), config, project) for path, text in texts.items()]

    return timed(run)


def index_summaries(texts: dict[Path, str]) -> tuple[float, int]:
    """The project index's summaries (CPython's ``ast``, as the checker makes them) of every file: (seconds, files)."""
    from torchsanity.analyzers.project_summary import summarize

    seconds, made = timed(lambda: [summarize(text) for text in texts.values()])
    return seconds, sum(1 for summary in made if summary is not None)


def command(argv: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    return timed(lambda: subprocess.run(argv, cwd=cwd, capture_output=True, text=True))


def breakdown(texts: dict[Path, str], root: Path) -> dict[str, float]:
    """Where the engine's time goes, phase by phase (the engine's own steps, called one at a time)."""
    import libcst as cst
    from libcst.metadata import MetadataWrapper, PositionProvider

    from torchsanity.analyzers import Project, all_rules
    from torchsanity.analyzers.context import RuleContext
    from torchsanity.analyzers.model import ProgramModel
    from torchsanity.analyzers.source import parse_source

    project = Project(root)
    times: dict[str, float] = defaultdict(float)
    rules = [rule() for rule in all_rules()]
    for path, text in texts.items():
        t, module = timed(lambda: _try_parse(parse_source, text))
        times["parse"] += t
        if module is None:
            continue
        t, model = timed(lambda: ProgramModel.build(module, str(path), project=project))
        times["program model (incl. sibling modules it follows)"] += t
        found = False
        ctx = RuleContext(model)  # one per file, as in the engine: the rules share its lazy analyses
        for rule in rules:
            t, raw = timed(lambda: _try_check(rule, ctx))
            times[f"rule {rule.code}"] += t
            found = found or bool(raw)
        if found:
            t, _ = timed(lambda: MetadataWrapper(module, unsafe_skip_copy=True).resolve(PositionProvider))
            times["positions (PositionProvider, files with findings)"] += t
    del cst
    return times


def _try_parse(parse, text):
    try:
        return parse(text)
    except Exception:
        return None


def _try_check(rule, ctx):
    try:
        return list(rule.check(ctx))
    except Exception:
        return []


# ---- main --------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", help="files or directories (default: labml_nn's training scripts)")
    parser.add_argument("--max-lines", type=int, default=12_000)
    parser.add_argument("--max-files", type=int, default=100)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="workers for the all-core runs")
    parser.add_argument("--no-breakdown", action="store_true", help="skip the per-phase breakdown")
    parser.add_argument("--list", action="store_true", help="print every file of the set")
    args = parser.parse_args(argv)

    if args.paths:
        label, root, files = explicit_files(args.paths)
    else:
        found = labml_files(args.max_lines, args.max_files)
        if found is None:
            print("labml-nn is not installed (pip install --no-deps labml-nn); using torch's own modules instead")
            found = torch_files(args.max_lines, args.max_files)
        label, root, files = found

    bin_dir = Path(sys.executable).parent
    torchsanity = [sys.executable, "-m", "torchsanity.server"]
    torchfix = shutil.which("torchfix", path=str(bin_dir)) or shutil.which("torchfix")

    with tempfile.TemporaryDirectory(prefix="torchsanity-bench-") as tmp:
        work = Path(tmp)
        copied = copy_set(root, files, work)
        texts = {p: p.read_text(encoding="utf-8") for p in copied}
        total_lines = sum(t.count("\n") for t in texts.values())
        total_bytes = sum(len(t.encode()) for t in texts.values())
        print(f"corpus: {label}: {len(copied)} files, {total_lines:,} lines, {total_bytes / 1024:.0f} KiB")
        print(f"        from {root}")
        shown = copied if args.list else copied[:8]
        for path in shown:
            print(f"        {path.relative_to(work).as_posix()}")
        if len(copied) > len(shown):
            print(f"        … and {len(copied) - len(shown)} more (--list shows all)")
        print(f"python {sys.version.split()[0]}, libcst {version('libcst')}, cores {os.cpu_count()}, "
              f"load average {os.getloadavg()[0]:.1f}" if hasattr(os, "getloadavg") else "")
        print()

        rel = [p.relative_to(work).as_posix() for p in copied]
        rows: list[tuple[str, float, str]] = []

        # Warm the imports and the page cache once, outside the measurements.
        subprocess.run(torchsanity + ["check", "--no-config", "-q", "--exit-zero", rel[0]], cwd=work, capture_output=True)

        t_parse = bare_parse(texts)
        rows.append(("libcst.parse_module, in-process, 1 core", t_parse, ""))

        t_engine, reports = engine_in_process(texts, work)
        findings = sum(len(r.findings) for r in reports)
        problems = sum(len(r.problems) for r in reports)
        rows.append(("torchsanity engine (analyze_source), in-process, 1 core", t_engine,
                     f"{findings} findings, {problems} problems"))

        # --no-cache on both: the -j 1 run would otherwise fill the cache the all-core run then reads
        t_ours_1, proc = command(torchsanity + ["check", "--no-config", "--no-cache", "--format", "json", "-j", "1", *rel], work)
        rows.append(("torchsanity check -j 1 (process: start-up, imports, output)", t_ours_1, f"exit {proc.returncode}"))

        t_ours_n, proc = command(torchsanity + ["check", "--no-config", "--no-cache", "--format", "json", "-j", str(args.jobs),
                                                *rel], work)
        rows.append((f"torchsanity check -j {args.jobs} (all cores)", t_ours_n, f"exit {proc.returncode}"))

        t_fix_1 = t_fix_n = None
        if torchfix:
            t_fix_1, proc = command([torchfix, "-j", "1", *rel], work)
            count = len([line for line in proc.stdout.splitlines() if re.search(r":\d+:\d+", line)])
            rows.append(("torchfix -j 1", t_fix_1, f"exit {proc.returncode}, {count} findings"))
            t_fix_n, proc = command([torchfix, "-j", str(args.jobs), *rel], work)
            rows.append((f"torchfix -j {args.jobs} (all cores)", t_fix_n, f"exit {proc.returncode}"))
        else:
            print("torchfix is not installed (pip install torchfix): no TorchFix comparison")

        t_summary, summarised = index_summaries(texts)
        rows.append(("project index summaries (ast)", t_summary, f"{summarised} files"))

        width = max(len(name) for name, _, _ in rows)
        for name, seconds, note in rows:
            rate = total_lines / seconds if seconds else float("inf")
            print(f"{name:<{width}}  {seconds:7.2f} s  {rate:9,.0f} lines/s  {note}")
        print()

        print("ratios (one run, side by side):")
        if t_fix_1:
            print(f"  throughput vs TorchFix, 1 core (CLI -j 1 vs torchfix -j 1): {t_fix_1 / t_ours_1:5.1f}x  (target >= 5x)")
            print(f"  throughput vs TorchFix, all cores:                        {t_fix_n / t_ours_n:5.1f}x  (target >= 5x)")
        print(f"  engine time / bare parse (in-process, 1 core):            {t_engine / t_parse:5.2f}x  (target <= 2x)")
        print(f"  CLI -j 1 time / bare parse (with start-up):               {t_ours_1 / t_parse:5.2f}x")
        print(f"  index summaries / bare parse:                             {t_summary / t_parse:5.2f}x")
        print(f"  engine + summaries / bare parse:                          {(t_engine + t_summary) / t_parse:5.2f}x")

        if not args.no_breakdown:
            times = breakdown(texts, work)
            total = sum(times.values())
            print()
            print(f"where the engine's time goes (phases run one by one; total {total:.2f} s, bare parse = 1.00):")
            for name, seconds in sorted(times.items(), key=lambda item: -item[1]):
                if seconds >= 0.005 * total:
                    print(f"  {name:<52} {seconds:7.3f} s  {seconds / total:6.1%}  {seconds / t_parse:5.2f}x parse")
            small = [name for name, seconds in times.items() if seconds < 0.005 * total]
            if small:
                print(f"  ({len(small)} more under 0.5% each)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
