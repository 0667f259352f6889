"""Benchmark (a script, not a test; it asserts no time): the `torchsanity check` command line on a tree of
300+ real PyTorch files, cold and cached, measured side by side in one run, with ruff as the reference.

    .venv/bin/pip install --no-deps labml-nn ruff      # the `bench` extra
    .venv/bin/python tests/bench/bench_cli_cache.py    # labml_nn + torch's nn / optim / utils.data modules
    .venv/bin/python tests/bench/bench_cli_cache.py DIR  # any other tree

Printed (targets of the CLI issue): first run vs cached re-run (>= 20x), a cached re-run after editing one
file vs checking that file alone (<= 2x), -j 1 vs the default (all cores), the engine's cost relative to
bare libcst parsing of the files it parses, how many files were skipped as unable to hold a finding (and
a check that analysing them anyway finds nothing), and `ruff check --select ALL` on the same tree.

Short runs (cached, edited, ruff) are timed ``--repeat`` times and the fastest is kept; the uncached
``-j 1`` and default runs alternate ``--repeat`` times, with the load average before each, so that other
work on the machine shows in the figures instead of hiding in them.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)  # locates without importing (labml_nn imports labml)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0])


def default_tree(target: Path, minimum: int) -> str:
    """Copy labml_nn (when installed) and torch's nn / optim / utils.data sources into ``target``."""
    sources = []
    labml = _package_dir("labml_nn")
    if labml is not None:
        sources.append(("labml_nn", labml))
    torch_dir = _package_dir("torch")
    assert torch_dir is not None, "torch is not installed"
    for sub in ("nn", "optim", "utils/data"):
        sources.append((f"torch_{sub.replace('/', '_')}", torch_dir / sub))
    count = 0
    labels = []
    for name, folder in sources:
        files = sorted(p for p in folder.rglob("*.py") if "__pycache__" not in p.parts)
        for path in files:
            destination = target / name / path.relative_to(folder)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, destination)
        count += len(files)
        labels.append(f"{name} ({len(files)} files)")
        if count >= minimum and labml is not None and name != "labml_nn":
            break
    try:
        labels[0] += f", labml-nn {version('labml-nn')}" if labml is not None else ""
    except PackageNotFoundError:
        pass
    return ", ".join(labels)


def snapshot_package(target: Path) -> dict[str, str]:
    """Copy this checkout's package into ``target`` and return the environment that runs the copy: the CLI
    measured is the code as it is now, even while the working tree is being edited (an edited engine
    module is, rightly, a new cache)."""
    repo = Path(__file__).resolve().parents[2]
    package = target / "torchsanity"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("", encoding="utf-8")
    for name in ("analyzers", "server", "probes"):
        shutil.copytree(repo / name, package / name, ignore=shutil.ignore_patterns("__pycache__"))
    # Byte-compiled as an installed package is (PYTHONDONTWRITEBYTECODE would otherwise make every run compile it).
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(package)], check=True, capture_output=True)
    return dict(os.environ, PYTHONPATH=str(target))


ENV: dict[str, str] | None = None


def timed(argv: list[str], cwd: Path) -> tuple[float, subprocess.CompletedProcess]:
    started = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=ENV)
    return time.perf_counter() - started, proc


def timed_cpu(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, the CLI and its workers) of one run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall, _ = timed(argv, cwd)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def fastest(argv: list[str], cwd: Path, repeat: int, before=None) -> tuple[float, subprocess.CompletedProcess]:
    """The fastest of ``repeat`` runs (``before()`` is called ahead of each, untimed)."""
    best: tuple[float, subprocess.CompletedProcess] | None = None
    for _ in range(repeat):
        if before is not None:
            before()
        run = timed(argv, cwd)
        if best is None or run[0] < best[0]:
            best = run
    assert best is not None
    return best


def imported_heavy(argv: list[str], cwd: Path) -> list[str]:
    """The modules of libcst, the engine and the rules that ``argv`` (a `check` run) imports."""
    proc = subprocess.run([argv[0], "-X", "importtime", *argv[1:]], cwd=cwd, capture_output=True, text=True, env=ENV)
    names = [line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")]
    return [n for n in names if n == "libcst" or n.startswith(("torchsanity.analyzers.rules.", "torchsanity.analyzers.engine"))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("tree", nargs="?", help="a directory to copy and check (default: see above)")
    parser.add_argument("--min-files", type=int, default=300)
    parser.add_argument("--repeat", type=int, default=3, help="runs per measurement (default 3)")
    args = parser.parse_args(argv)

    import libcst as cst

    from torchsanity.analyzers import Config, Project, analyze_source
    from torchsanity.analyzers.relevance import may_hold_finding

    check = [sys.executable, "-m", "torchsanity.server", "check", "--no-config", "--format", "json", "--exit-zero"]
    ruff = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")

    global ENV
    with tempfile.TemporaryDirectory(prefix="torchsanity-cli-bench-") as tmp:
        ENV = snapshot_package(Path(tmp) / "package")
        work = Path(tmp) / "tree"
        work.mkdir()
        if args.tree:
            shutil.copytree(args.tree, work, dirs_exist_ok=True)
            label = args.tree
        else:
            label = default_tree(work, args.min_files)
        files = sorted(work.rglob("*.py"))
        texts = {p: p.read_text(encoding="utf-8", errors="replace") for p in files}
        lines = sum(t.count("\n") for t in texts.values())
        print(f"tree: {label}")
        print(f"      {len(files)} files, {lines:,} lines; python {sys.version.split()[0]}, libcst {version('libcst')}, "
              f"cores {os.cpu_count()}, load average {os.getloadavg()[0]:.1f}")
        print()

        timed(check + ["--no-cache", str(files[0])], work)  # warm imports, page cache
        probe = subprocess.run([sys.executable, "-c", "import torchsanity.server, sys; print(torchsanity.server.__file__)"],
                               env=ENV, capture_output=True, text=True).stdout.strip()
        print(f"      the CLI runs from a snapshot of the package: {probe}")

        # In-process: which files are skipped, what parsing them costs, what the engine costs.
        project = Project(work)
        relevant = {p for p in files if may_hold_finding(texts[p], str(p), project)[0]}
        skipped = [p for p in files if p not in relevant]
        t0 = time.perf_counter()
        for p in files:
            try:
                cst.parse_module(texts[p])
            except Exception:
                pass
        t_parse_all = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in files:
            try:
                ast.parse(texts[p])
            except Exception:
                pass
        t_ast = time.perf_counter() - t0
        t0 = time.perf_counter()
        for p in relevant:
            try:
                cst.parse_module(texts[p])
            except Exception:
                pass
        t_parse_relevant = time.perf_counter() - t0
        config, engine_project = Config(), Project(work)
        t0 = time.perf_counter()
        for p in sorted(relevant):
            analyze_source(texts[p], str(p), config, engine_project)
        t_engine = time.perf_counter() - t0
        hidden = sum(len(analyze_source(texts[p], str(p), config, Project(work)).findings) for p in skipped)

        rows: list[tuple[str, float, str]] = []
        # -j 1 and the default alternate, so that a busy moment costs both alike; the load average is printed.
        # CPU seconds say what the runs would take on idle cores: -j 1 is bound by its CPU time, the default
        # by its CPU time shared among the cores (plus what cannot run in parallel).
        j1_runs, default_runs = [], []
        for _ in range(args.repeat):
            j1_runs.append((*timed_cpu(check + ["--no-cache", "-j", "1", "."], work), os.getloadavg()[0]))
            default_runs.append((*timed_cpu(check + ["--no-cache", "."], work), os.getloadavg()[0]))
        t_nocache_j1, t_nocache = min(t for t, _, _ in j1_runs), min(t for t, _, _ in default_runs)
        cpu_j1, cpu_default = min(c for _, c, _ in j1_runs), min(c for _, c, _ in default_runs)
        loads = lambda runs: " ".join(f"{t:.1f}s/{c:.1f}cpu@{load:.1f}" for t, c, load in runs)  # noqa: E731
        rows.append(("check -j 1, no cache (fastest)", t_nocache_j1, f"runs (wall/CPU s@load average after): {loads(j1_runs)}"))
        rows.append(("check (default: all cores), no cache (fastest)", t_nocache, f"runs: {loads(default_runs)}"))
        shutil.rmtree(work / ".torchsanity_cache", ignore_errors=True)
        t_first, first = timed(check + ["."], work)
        rows.append(("check, first run (fills the cache)", t_first, f"{len(json.loads(first.stdout))} findings"))
        t_cached, cached = fastest(check + ["."], work, max(args.repeat, 5))
        stats_command = [sys.executable, "-m", "torchsanity.server", "check", "--no-config", "--exit-zero", "--statistics", "."]
        stats = timed(stats_command, work)[1].stdout.strip().splitlines()[-1]
        heavy = imported_heavy(check + ["."], work)
        rows.append(("check, cached re-run (nothing changed)", t_cached,
                     ("same output; " if cached.stdout == first.stdout else "OUTPUT DIFFERS; ") + stats
                     + (f" imports {len(heavy)} modules of libcst / the engine / the rules" if heavy
                        else " imports no libcst, engine or rule")))

        # Edit one file that no other file imports (a training script), as a user does between runs.
        importers = {p for p in files if "import" in texts[p]}
        edited = next((p for p in sorted(relevant) if p.name in ("experiment.py", "train.py") and p in importers), sorted(relevant)[0])
        rel = edited.relative_to(work).as_posix()
        t_alone, _ = fastest(check + ["--no-cache", rel], work, args.repeat)
        rows.append((f"check {rel} alone, no cache", t_alone, ""))
        edits = iter(range(1, args.repeat + 1))

        def edit() -> None:
            edited.write_text(texts[edited] + f"\n# edited {next(edits)}\n", encoding="utf-8")

        t_edit, _ = fastest(check + ["."], work, args.repeat, before=edit)
        rows.append(("check, cached re-run after editing that file", t_edit, "a new edit before each run"))

        t_ruff = t_ruff_cached = None
        if ruff:
            t_ruff, proc = fastest([ruff, "check", "--select", "ALL", "--no-cache", "--exit-zero", "--quiet", "."], work,
                                   args.repeat)
            rows.append(("ruff check --select ALL, no cache", t_ruff, f"ruff {version('ruff')}"))
            timed([ruff, "check", "--select", "ALL", "--exit-zero", "--quiet", "."], work)
            t_ruff_cached, _ = fastest([ruff, "check", "--select", "ALL", "--exit-zero", "--quiet", "."], work,
                                       args.repeat)
            rows.append(("ruff check --select ALL, cached re-run", t_ruff_cached, ""))
        else:
            print("ruff is not installed (pip install ruff): no reference run")

        width = max(len(name) for name, _, _ in rows)
        for name, seconds, note in rows:
            print(f"{name:<{width}}  {seconds:7.2f} s  {note}")
        print()
        print("in-process, one core:")
        print(f"  bare libcst parse, all {len(files)} files:               {t_parse_all:7.2f} s  (CPython ast.parse: {t_ast:.2f} s)")
        print(f"  files skipped (cannot hold a finding, not parsed):  {len(skipped):7d}     analysed anyway: {hidden} findings")
        print(f"  bare libcst parse of the {len(relevant)} files analysed:       {t_parse_relevant:7.2f} s")
        print(f"  engine (analyze_source) on those files:             {t_engine:7.2f} s")
        print()
        print("ratios (one run, side by side):")
        print(f"  first run / cached re-run:                          {t_first / t_cached:7.1f}x  (target >= 20x)")
        print(f"  re-run after one edit / that file checked alone:    {t_edit / t_alone:7.2f}x  (target <= 2x)")
        print(f"  -j 1 / default (all cores), no cache:               {t_nocache_j1 / t_nocache:7.2f}x  "
              f"(fastest of each; per pair: {' '.join(f'{a[0] / b[0]:.2f}' for a, b in zip(j1_runs, default_runs))})")
        cores = os.cpu_count() or 1
        print(f"  CPU seconds, default / -j 1, no cache:              {cpu_default / cpu_j1:7.2f}x  "
              f"(what running in parallel adds; bound on {cores} idle cores: {cores * cpu_j1 / cpu_default:.2f}x)")
        print(f"  engine / bare parse of the files it parses:         {t_engine / t_parse_relevant:7.2f}x  (target <= 2x)")
        print(f"  CLI, no cache / bare parse of every file:           {t_nocache / t_parse_all:7.2f}x")
        if t_ruff:
            print(f"  torchsanity first run / ruff (no cache):            {t_first / t_ruff:7.1f}x")
            print(f"  torchsanity cached / ruff cached:                   {t_cached / t_ruff_cached:7.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
